// Inclusive prefix sums over the last dim: out[i] = fp32(x[0] + x[1] + ... + x[i]), the sum accumulated in
// double from left to right, each output rounded once. One thread per row; torch's cumsum leaves its
// accumulation type and order to each build's kernel.
#include "canonical.h"
#include "rows.h"

// x [rows, width] of any floating dtype; returns fp32.
at::Tensor canonical_cumsum(const at::Tensor& x) {
  return bi_bench::map_rows(x, "canonical_cumsum", [](const float* row, int64_t width, float* out) {
    double total = 0.0;
    for (int64_t i = 0; i < width; ++i) {
      total += static_cast<double>(row[i]);
      out[i] = static_cast<float>(total);
    }
  });
}
