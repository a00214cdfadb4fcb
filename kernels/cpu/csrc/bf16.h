// bf16 <-> fp32: widened in a register (one vpmovzxwd and a shift: exact, the bits move up by 16), and rounded
// to nearest even as c10::BFloat16(float) rounds (a NaN becomes 0x7FC0), in vectors.
#pragma once

#include <immintrin.h>

#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

namespace bi_bench {

// to[i] = the bits of c10::BFloat16(from[i]) for i < count: 16 at a time as vectors (GCC/Clang vector extension),
// the tail by c10 itself.
inline void round_to_bf16(const float* from, uint16_t* to, int64_t count) {
  typedef uint32_t Words __attribute__((vector_size(16 * sizeof(uint32_t))));
  typedef int32_t Hits __attribute__((vector_size(16 * sizeof(int32_t))));
  typedef float Floats __attribute__((vector_size(16 * sizeof(float))));
  typedef uint16_t Halves __attribute__((vector_size(16 * sizeof(uint16_t))));
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    Floats values;
    Words bits;
    std::memcpy(&values, from + i, sizeof(values));
    std::memcpy(&bits, from + i, sizeof(bits));
    const Hits nan = values != values;
    const Words rounded = nan ? Words{} + 0x7FC0u : (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    const Halves halves = __builtin_convertvector(rounded, Halves);
    std::memcpy(to + i, &halves, sizeof(halves));
  }
  for (; i < count; ++i) to[i] = c10::BFloat16(from[i]).x;
}

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
