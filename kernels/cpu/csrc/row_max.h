// The maximum of a row of floats, as log_softmax and the row program's scores take it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

namespace bi_bench {

// The row's maximum, NaNs skipped, in 16 lanes so that the loop vectorizes (one scan is a chain of dependent
// compares). Exact in any order; only its sign can differ, where +0.0 and -0.0 tie, and then every x - max is
// the same (x - 0.0 = x for x != 0, and a zero minus a zero is a zero whose exp is 1). An empty row, or one of
// NaNs only, gives -inf.
inline float row_max(const float* x, int64_t width) {
  constexpr int kLanes = 16;
  // kLanes floats as one value (GCC/Clang vector extension), so that the scan is a vector compare and select
  typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
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

}  // namespace bi_bench
