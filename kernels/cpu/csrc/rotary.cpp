// Rotary position embedding, Hugging Face's arithmetic in one call for q and k: no reduction, each element
// on its own. For a row x of head_dim D (half = D / 2) and its position's cos, sin (in x's dtype T):
//   rotated[i] = -x[i + half] for i < half, x[i - half] otherwise   (rotate_half: exact)
//   out[i] = T(T(x[i] * cos[i]) + T(rotated[i] * sin[i]))           (fp32 products and sum, each rounded to T;
//                                                                    in fp32 the roundings are the identity)
#include "canonical.h"
#include "rows.h"

#include <ATen/Parallel.h>

namespace {

template <typename T>
void rotate_rows(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, at::Tensor& out) {
  const int64_t tokens = x.size(0), heads = x.size(1), dim = x.size(2), half = dim / 2;
  const T* src = x.data_ptr<T>();
  const T* c = cos.data_ptr<T>();
  const T* s = sin.data_ptr<T>();
  T* dst = out.data_ptr<T>();
  at::parallel_for(0, tokens * heads, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* in = src + row * dim;
      const T* row_cos = c + (row / heads) * dim;
      const T* row_sin = s + (row / heads) * dim;
      for (int64_t i = 0; i < dim; ++i) {
        const float rotated = i < half ? -static_cast<float>(in[i + half]) : static_cast<float>(in[i - half]);
        const T straight = static_cast<T>(static_cast<float>(in[i]) * static_cast<float>(row_cos[i]));
        const T turned = static_cast<T>(rotated * static_cast<float>(row_sin[i]));
        dst[row * dim + i] = static_cast<T>(static_cast<float>(straight) + static_cast<float>(turned));
      }
    }
  });
}

at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) % 2 == 0, "rotary: x must be [tokens, heads, even head_dim]");
  TORCH_CHECK(cos.numel() == x.size(0) * x.size(2) && sin.numel() == cos.numel(), "rotary: cos, sin [tokens, head_dim]");
  TORCH_CHECK(cos.scalar_type() == x.scalar_type() && sin.scalar_type() == x.scalar_type(), "rotary: one dtype");
  const auto in = x.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  auto out = at::empty_like(in);
  bi_bench::dispatch_floats(in.scalar_type(), "rotary",
                            [&](auto tag) { rotate_rows<decltype(tag)>(in, c, s, out); });
  return out;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> apply_rotary(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                                const at::Tensor& sin) {
  return {rotate(q, cos, sin), rotate(k, cos, sin)};
}
