// Elementwise functions whose bits are the same on every CPU: each element is computed on its own, in fp32,
// by the fixed sequences of canonical_math.h (exp, log, and what is built from them), or in double by
// libm and rounded once to fp32 (cos, sin, pow: RoPE tables, computed once per step). No reduction here.
// Inputs of any floating dtype are widened exactly to fp32; results are rounded once to the input's dtype.
#include "canonical.h"
#include "rows.h"
#include "canonical_math.h"

#include <ATen/Parallel.h>

namespace {

template <typename scalar_t, typename fn_t>
void map_typed(const at::Tensor& in, at::Tensor& out, fn_t fn) {
  const scalar_t* src = in.data_ptr<scalar_t>();
  scalar_t* dst = out.data_ptr<scalar_t>();
  at::parallel_for(0, in.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dst[i] = static_cast<scalar_t>(fn(static_cast<float>(src[i])));
  });
}

template <typename fn_t>
at::Tensor map(const at::Tensor& x, fn_t fn) {
  const auto in = x.contiguous();
  auto out = at::empty_like(in);
  bi_bench::dispatch_floats(in.scalar_type(), "canonical pointwise",
                            [&](auto tag) { map_typed<decltype(tag)>(in, out, fn); });
  return out;
}

// x / (1 + e^-x), as torch writes SiLU
float silu(float v) { return v / (1.0f + bi_bench::exp(-v)); }

}  // namespace

at::Tensor canonical_exp(const at::Tensor& x) { return map(x, [](float v) { return bi_bench::exp(v); }); }

at::Tensor canonical_log(const at::Tensor& x) { return map(x, [](float v) { return bi_bench::log(v); }); }

at::Tensor canonical_silu(const at::Tensor& x) { return map(x, [](float v) { return silu(v); }); }

// canonical_silu(gate) * up in one pass: the SiLU rounded to the inputs' dtype, then the product as torch's mul
// computes it (in fp32, rounded once): the bits of the two calls, without the tensor between them.
at::Tensor canonical_silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  TORCH_CHECK(gate.sizes() == up.sizes() && gate.scalar_type() == up.scalar_type(),
              "canonical_silu_mul: gate and up of one shape and dtype");
  const auto g = gate.contiguous(), u = up.contiguous();
  auto out = at::empty_like(g);
  bi_bench::dispatch_floats(g.scalar_type(), "canonical_silu_mul", [&](auto tag) {
    using scalar_t = decltype(tag);
    const scalar_t* gate_data = g.data_ptr<scalar_t>();
    const scalar_t* up_data = u.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), 16384, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float activated = static_cast<scalar_t>(silu(static_cast<float>(gate_data[i])));
        dst[i] = static_cast<scalar_t>(activated * static_cast<float>(up_data[i]));
      }
    });
  });
  return out;
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(y) = 1 - 2 / (e^2y + 1): near y = 0 its error is
// one ulp of 1, which is what 1 + tanh keeps anyway.
at::Tensor canonical_gelu_tanh(const at::Tensor& x) {
  return map(x, [](float v) {
    const float inner = 0.7978845608028654f * (v + 0.044715f * (v * v * v));
    const float tanh = 1.0f - 2.0f / (bi_bench::exp(2.0f * inner) + 1.0f);
    return 0.5f * v * (1.0f + tanh);
  });
}

at::Tensor canonical_cos(const at::Tensor& x) {
  return map(x, [](float v) { return static_cast<float>(std::cos(static_cast<double>(v))); });
}

at::Tensor canonical_sin(const at::Tensor& x) {
  return map(x, [](float v) { return static_cast<float>(std::sin(static_cast<double>(v))); });
}

at::Tensor canonical_pow_scalar(double base, const at::Tensor& exponent) {
  return map(exponent, [base](float v) { return static_cast<float>(std::pow(base, static_cast<double>(v))); });
}
