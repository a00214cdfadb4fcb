// log_softmax over the last dim, each row reduced by one thread in one fixed order:
//   max over the row (exact in any order);
//   s[j] = sum of exp(x[i] - max) over i = j, j + 16, j + 32, ... in increasing i, for the 16 lanes j;
//   the lanes combined by a fixed tree: s[j] += s[j + 8], then + 4, + 2, + 1 (j below the stride);
//   out[i] = (x[i] - max) - log(s[0]).
// 16 lanes whatever the CPU's vector width, exp and log from canonical_math.h: the same bits everywhere.
#include "canonical.h"
#include "canonical_math.h"
#include "rows.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace {

constexpr int kLanes = 16;
// kLanes floats as one value (GCC/Clang vector extension), so that the scan is a vector compare and select: the
// scalar loop's lane-wise form was left scalar by the compiler (a third of the kernel's time)
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

// The row's maximum, NaNs skipped, in 16 lanes so that the loop vectorizes (one scan is a chain of dependent
// compares). Exact in any order; only its sign can differ, where +0.0 and -0.0 tie, and then every x - max is
// the same (x - 0.0 = x for x != 0, and a zero minus a zero is a zero whose exp is 1; the total is >= 2, so
// log(total) != 0 and (x - max) - log(total) never sees the zero's sign).
float row_max(const float* x, int64_t width) {
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  Lanes lanes = kLowest - Lanes{};
  int64_t i = 0;
  for (; i + kLanes <= width; i += kLanes) {
    Lanes v;
    std::memcpy(&v, x + i, sizeof(v));
    lanes = lanes < v ? v : lanes;  // a NaN compares false: skipped
  }
  float max = kLowest;
  for (; i < width; ++i) max = std::max(max, x[i]);
  for (int j = 0; j < kLanes; ++j) max = std::max(max, lanes[j]);
  return max;
}

void log_softmax_row(const float* x, int64_t width, float* out) {
  const float max = row_max(x, width);
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= width; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += bi_bench::exp(x[i + j] - max);
  }
  for (int j = 0; i + j < width; ++j) lanes[j] += bi_bench::exp(x[i + j] - max);
  for (int stride = kLanes / 2; stride >= 1; stride /= 2) {
    for (int j = 0; j < stride; ++j) lanes[j] += lanes[j + stride];
  }
  const float log_total = bi_bench::log(lanes[0]);
  for (int64_t k = 0; k < width; ++k) out[k] = (x[k] - max) - log_total;
}

}  // namespace

// x [rows, width] of any floating dtype; returns fp32.
at::Tensor canonical_log_softmax(const at::Tensor& x) {
  return bi_bench::map_rows(x, "canonical_log_softmax", log_softmax_row);
}
