// Python bindings of the C++ CPU kernels declared in canonical.h.
#include <torch/extension.h>

#include "canonical.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pack_weight", &pack_weight);
  m.def("canonical_linears", &canonical_linears);
  m.def("matmul_isa", &matmul_isa);
  m.def("exp", &canonical_exp);
  m.def("log", &canonical_log);
  m.def("silu", &canonical_silu);
  m.def("gelu_tanh", &canonical_gelu_tanh);
  m.def("cos", &canonical_cos);
  m.def("sin", &canonical_sin);
  m.def("pow_scalar", &canonical_pow_scalar);
  m.def("halving_rmsnorm", &halving_rmsnorm);
  m.def("apply_rotary", &apply_rotary);
  m.def("log_softmax", &canonical_log_softmax);
  m.def("greedy", &canonical_greedy);
  m.def("cumsum", &canonical_cumsum);
  m.def("row_attention", &row_attention);
  pybind11::class_<LlamaLayer, std::shared_ptr<LlamaLayer>>(m, "LlamaLayer")
      .def(pybind11::init([](at::Tensor input_norm, at::Tensor post_norm, double eps, std::vector<at::Tensor> qkv,
                             at::Tensor o, std::vector<at::Tensor> gate_up, at::Tensor down, int64_t heads,
                             int64_t kv_heads, int64_t head_dim, int64_t intermediate, double scale, int64_t window,
                             bool library) {
        return LlamaLayer{input_norm, post_norm, eps, qkv, o, gate_up, down, heads, kv_heads, head_dim,
                          intermediate, scale, window, library};
      }));
  m.def("llama_stack", &llama_stack);
}
