// log_softmax over the last dim, each row reduced by one thread in one fixed order:
//   max over the row (exact in any order, row_max.h);
//   log_total = the log of the exp-sum in 16 fixed lanes and a fixed tree (log_total.h);
//   out[i] = (x[i] - max) - log_total.
// exp and log from canonical_math.h: the same bits everywhere.
#include "canonical.h"
#include "log_total.h"
#include "row_max.h"
#include "rows.h"

namespace {

void log_softmax_row(const float* x, int64_t width, float* out) {
  // a zero maximum's sign is not fixed; where it shows, in a zero x - max, the total is >= 2, so log(total) != 0
  // and (x - max) - log(total) never sees it
  const float max = bi_bench::row_max(x, width);
  const float log_total = bi_bench::log_total(x, width, max);
  for (int64_t k = 0; k < width; ++k) out[k] = (x[k] - max) - log_total;
}

}  // namespace

// x [rows, width] of any floating dtype; returns fp32.
at::Tensor canonical_log_softmax(const at::Tensor& x) {
  return bi_bench::map_rows(x, "canonical_log_softmax", log_softmax_row);
}
