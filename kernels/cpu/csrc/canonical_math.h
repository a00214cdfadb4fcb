// Canonical fp32 exp and log: fixed polynomials of IEEE operations only (fma, mul, add, exact bit moves).
//
// Order of evaluation, the same on every CPU and at every vector width: range reduction by Cody-Waite with
// fma, then one Horner chain of fma, then an exact power-of-two scaling. libm's and torch's vectorized exp
// and log are other algorithms per build (torch's SiLU, on its vectorized exp, already gives other bits in its
// scalar and AVX2 kernels), so nothing on the invariant path calls them. Coefficients are Cephes' (S. L. Moshier), about 1 ulp.
// Sources including this header are compiled with -ffp-contract=off: no expression here is fused unless
// it says std::fma.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace bi_bench {

inline float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint32_t to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return bits;
}

// Round to the nearest integer (ties to even) with two IEEE additions, exact for |x| < 2^22.
inline float round_to_int(float x) {
  constexpr float kShifter = 12582912.0f;  // 1.5 * 2^23
  return (x + kShifter) - kShifter;
}

// Special cases are selects, not branches, so that loops over these functions vectorize.
inline float exp(float x) {
  const float clamped = x < -104.0f ? -104.0f : (x > 88.8f ? 88.8f : x);
  const float n = round_to_int(clamped * 1.44269504088896341f);
  float r = std::fma(n, -0.693359375f, clamped);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r * r, r) + 1.0f;
  // 2^n as two normal factors, so overflow and gradual underflow round like one multiplication would
  const int e = static_cast<int>(n), half = e >> 1;
  const float result = p * from_bits(static_cast<uint32_t>(half + 127) << 23) *
                       from_bits(static_cast<uint32_t>(e - half + 127) << 23);
  const float saturated = x > 88.8f ? std::numeric_limits<float>::infinity() : (x < -104.0f ? 0.0f : result);
  return x != x ? x : saturated;
}

inline float log(float x) {
  const bool subnormal = x < std::numeric_limits<float>::min();
  const float scaled = subnormal ? x * 8388608.0f : x;  // subnormals: into the normal range first
  const uint32_t bits = to_bits(scaled);
  int e = static_cast<int>(bits >> 23) - (subnormal ? 126 + 23 : 126);  // x = m * 2^e with m in [0.5, 1)
  float m = from_bits((bits & 0x007fffffu) | 0x3f000000u);
  const bool low = m < 0.707106781186547524f;
  e -= low ? 1 : 0;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = std::fma(y, m, -1.1514610310e-1f);
  y = std::fma(y, m, 1.1676998740e-1f);
  y = std::fma(y, m, -1.2420140846e-1f);
  y = std::fma(y, m, 1.4249322787e-1f);
  y = std::fma(y, m, -1.6668057665e-1f);
  y = std::fma(y, m, 2.0000714765e-1f);
  y = std::fma(y, m, -2.4999993993e-1f);
  y = std::fma(y, m, 3.3333331174e-1f);
  y = y * m * z;
  const float fe = static_cast<float>(e);
  y = std::fma(fe, -2.12194440e-4f, y);
  y = std::fma(-0.5f, z, y);
  const float result = std::fma(fe, 0.693359375f, m + y);
  const float inf = std::numeric_limits<float>::infinity();
  const float special = x == 0.0f ? -inf : (x == inf ? inf : result);
  return (x != x || x < 0.0f) ? std::numeric_limits<float>::quiet_NaN() : special;
}

}  // namespace bi_bench
