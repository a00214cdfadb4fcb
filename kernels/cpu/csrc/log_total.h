// The log of a row's softmax denominator, as log_softmax and greedy decoding's pick take it:
//   s[j] = sum of exp(x[i] - max) over i = j, j + 16, j + 32, ... in increasing i, for the 16 lanes j;
//   the lanes combined by a fixed tree: s[j] += s[j + 8], then + 4, + 2, + 1 (j below the stride);
//   log(s[0]).
// 16 lanes whatever the CPU's vector width, exp and log from canonical_math.h: the same bits everywhere.
#pragma once

#include "canonical_math.h"

#include <cstdint>

namespace bi_bench {

inline float log_total(const float* x, int64_t width, float max) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= width; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += exp(x[i + j] - max);
  }
  for (int j = 0; i + j < width; ++j) lanes[j] += exp(x[i + j] - max);
  for (int stride = kLanes / 2; stride >= 1; stride /= 2) {
    for (int j = 0; j < stride; ++j) lanes[j] += lanes[j + stride];
  }
  return log(lanes[0]);
}

}  // namespace bi_bench
