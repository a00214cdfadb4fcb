// log_softmax over the last dim, each row reduced by one thread in one fixed order:
//   max over the row (exact in any order);
//   s[j] = sum of exp(x[i] - max) over i = j, j + 16, j + 32, ... in increasing i, for the 16 lanes j;
//   the lanes combined by a fixed tree: s[j] += s[j + 8], then + 4, + 2, + 1 (j below the stride);
//   out[i] = (x[i] - max) - log(s[0]).
// 16 lanes whatever the CPU's vector width, exp and log from canonical_math.h: the same bits everywhere.
#include "canonical.h"
#include "canonical_math.h"
#include "row_max.h"
#include "rows.h"

namespace {

constexpr int kLanes = 16;

void log_softmax_row(const float* x, int64_t width, float* out) {
  // a zero maximum's sign is not fixed; where it shows, in a zero x - max, the total is >= 2, so log(total) != 0
  // and (x - max) - log(total) never sees it
  const float max = bi_bench::row_max(x, width);
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
