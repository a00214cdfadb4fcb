// The C++ CPU kernels of bi-bench, one concern per source file; bindings.cpp exposes them to Python.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

// matmul.cpp
at::Tensor pack_weight(const at::Tensor& weight);
std::vector<at::Tensor> canonical_linears(const at::Tensor& x, const std::vector<at::Tensor>& packed,
                                          const std::vector<int64_t>& widths);
std::string matmul_isa();

// pointwise.cpp
at::Tensor canonical_exp(const at::Tensor& x);
at::Tensor canonical_log(const at::Tensor& x);
at::Tensor canonical_silu(const at::Tensor& x);
at::Tensor canonical_silu_mul(const at::Tensor& gate, const at::Tensor& up);
at::Tensor canonical_gelu_tanh(const at::Tensor& x);
at::Tensor canonical_cos(const at::Tensor& x);
at::Tensor canonical_sin(const at::Tensor& x);
at::Tensor canonical_pow_scalar(double base, const at::Tensor& exponent);

// rmsnorm.cpp
std::tuple<at::Tensor, at::Tensor> halving_rmsnorm(const at::Tensor& x, const at::Tensor& weight,
                                                   const c10::optional<at::Tensor>& residual, double eps,
                                                   bool unit_offset);

// rotary.cpp
std::tuple<at::Tensor, at::Tensor> apply_rotary(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                                const at::Tensor& sin);

// log_softmax.cpp
at::Tensor canonical_log_softmax(const at::Tensor& x);

// greedy.cpp
std::tuple<at::Tensor, at::Tensor> canonical_greedy(const at::Tensor& logits);

// cumsum.cpp
at::Tensor canonical_cumsum(const at::Tensor& x);

// row_attention.cpp
at::Tensor row_attention(at::Tensor q, at::Tensor k_cache, at::Tensor v_cache, at::Tensor row_seq,
                         at::Tensor row_keys, at::Tensor block_tables, double scale, int64_t window);

// phase_attention.cpp: the row program for every row, or default mode's cpu_phase_split
at::Tensor stack_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& row_seq, const at::Tensor& row_keys, const at::Tensor& block_tables,
                           double scale, int64_t window, bool prefill_by_sdpa);

// decoder_layer.cpp: one Llama layer's constants, made once per weight version (engine/layers/fused_decoder.py)
struct LlamaLayer {
  at::Tensor input_norm, post_norm;
  double eps;
  std::vector<at::Tensor> qkv;  // packed for canonical_linears, or as they are where `library` (at::linear)
  at::Tensor o;
  std::vector<at::Tensor> gate_up;
  at::Tensor down;
  int64_t heads, kv_heads, head_dim, intermediate;
  double scale;
  int64_t window;
  bool library;
};

std::tuple<at::Tensor, at::Tensor> llama_stack(
    const at::Tensor& hidden, const std::vector<std::shared_ptr<LlamaLayer>>& layers, const at::Tensor& cos,
    const at::Tensor& sin, const std::vector<at::Tensor>& k_caches, const std::vector<at::Tensor>& v_caches,
    const at::Tensor& slot_mapping, const at::Tensor& row_seq, const at::Tensor& row_keys,
    const at::Tensor& block_tables, bool prefill_by_sdpa);
