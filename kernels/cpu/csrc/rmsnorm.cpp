// RMSNorm with an optional fused residual add, each row by one thread in one fixed order: the arithmetic of
// kernels/generic/halving.py (the mean of squares by pairwise halving) and of Hugging Face's RMSNorm, in one call.
//
// Per row of width W, in the input dtype T (fp32, bf16 or fp16; bf16/fp16 ops compute in fp32, round once):
//   x = x + residual                        (in T, when a residual is given; this sum is also returned)
//   s[i] = fp32(x[i]) * fp32(x[i])
//   halving: while W > 1: if W is odd, s[W] = 0 and W += 1; then s[i] = s[i] + s[i + W/2] for i < W/2; W /= 2
//   mean = s[0] / width;  r = 1 / sqrt(mean + fp32(eps))
//   h[i] = fp32(x[i]) * r
//   out[i] = T(h[i] * (1 + fp32(w[i])))     (unit_offset: Gemma's)
//   out[i] = T(fp32(w[i]) * fp32(T(h[i])))  (otherwise: Llama's)
// Only elementwise adds and multiplies, each rounded on its own (fp-contract off): no vector width, thread
// count or batch can change a row's bits.
#include "canonical.h"
#include "rows.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

template <typename T>
void normalize_row(const T* x, const T* residual, T* summed, const T* weight, float eps, bool unit_offset,
                   int64_t width, float* squares, T* out) {
  if (residual) {
    for (int64_t i = 0; i < width; ++i) {
      summed[i] = static_cast<T>(static_cast<float>(x[i]) + static_cast<float>(residual[i]));
    }
    x = summed;
  }
  for (int64_t i = 0; i < width; ++i) {
    const float v = static_cast<float>(x[i]);
    squares[i] = v * v;
  }
  for (int64_t n = width; n > 1; n /= 2) {
    if (n % 2) squares[n++] = 0.0f;
    for (int64_t i = 0; i < n / 2; ++i) squares[i] = squares[i] + squares[i + n / 2];
  }
  const float mean = squares[0] / static_cast<float>(width);
  const float r = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < width; ++i) {
    const float h = static_cast<float>(x[i]) * r;
    const float w = static_cast<float>(weight[i]);
    out[i] = unit_offset ? static_cast<T>(h * (1.0f + w)) : static_cast<T>(w * static_cast<float>(static_cast<T>(h)));
  }
}

template <typename T>
void normalize_rows(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight, float eps,
                    bool unit_offset, at::Tensor& out, at::Tensor& summed) {
  const int64_t rows = x.size(0), width = x.size(1);
  const T* residual_data = residual.defined() ? residual.data_ptr<T>() : nullptr;
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> squares(width + 1);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t at = r * width;
      normalize_row<T>(x.data_ptr<T>() + at, residual_data ? residual_data + at : nullptr,
                       residual_data ? summed.data_ptr<T>() + at : nullptr, weight.data_ptr<T>(), eps, unit_offset,
                       width, squares.data(), out.data_ptr<T>() + at);
    }
  });
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> halving_rmsnorm(const at::Tensor& x, const at::Tensor& weight,
                                                   const c10::optional<at::Tensor>& residual, double eps,
                                                   bool unit_offset) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 1 && weight.size(0) == x.size(1),
              "halving_rmsnorm: x [rows, width] and weight [width]");
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "halving_rmsnorm: weight in x's dtype");
  const auto in = x.contiguous();
  const auto w = weight.contiguous();
  const auto res = residual.has_value() ? residual->contiguous() : at::Tensor();
  TORCH_CHECK(!res.defined() || (res.sizes() == in.sizes() && res.scalar_type() == in.scalar_type()),
              "halving_rmsnorm: residual like x");
  auto out = at::empty_like(in);
  auto summed = res.defined() ? at::empty_like(in) : in;
  const float eps32 = static_cast<float>(eps);
  bi_bench::dispatch_floats(in.scalar_type(), "halving_rmsnorm", [&](auto tag) {
    normalize_rows<decltype(tag)>(in, res, w, eps32, unit_offset, out, summed);
  });
  return {out, summed};
}
