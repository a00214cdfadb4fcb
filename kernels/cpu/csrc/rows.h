// Row-wise kernels' common frame: x [rows, width] of any floating dtype, widened to fp32; fn(row, width, out)
// fills each fp32 output row, one thread per row.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace bi_bench {

template <typename fn_t>
at::Tensor map_rows(const at::Tensor& x, const char* name, fn_t fn) {
  TORCH_CHECK(x.dim() == 2, name, ": x must be [rows, width]");
  const auto in = x.to(at::kFloat).contiguous();
  auto out = at::empty_like(in);
  const int64_t rows = in.size(0), width = in.size(1);
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) fn(src + r * width, width, dst + r * width);
  });
  return out;
}

// body(scalar_t{}) for x's dtype among the three these kernels compute in fp32; float64 and the rest are refused
// (AT_DISPATCH would admit double, which they must not narrow).
template <typename body_t>
void dispatch_floats(at::ScalarType type, const char* name, body_t body) {
  switch (type) {
    case at::kFloat: body(float{}); break;
    case at::kBFloat16: body(at::BFloat16{}); break;
    case at::kHalf: body(at::Half{}); break;
    default: TORCH_CHECK(false, name, " takes float32, bfloat16 or float16");
  }
}

}  // namespace bi_bench
