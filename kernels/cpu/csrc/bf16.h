// bf16 widened to fp32 in a register, one vpmovzxwd and a shift: exact, the bits move up by 16.
#pragma once

#include <immintrin.h>

namespace bi_bench {

#if defined(__AVX512F__)
inline __m512 widened(__m256i halves) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}
#endif
#if defined(__AVX2__)
inline __m256 widened(__m128i halves) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}
#endif

}  // namespace bi_bench
