// Paged causal attention in which every (query token, head) row owns its whole reduction.
//
// Every row walks its own keys in position order: dot products over head_dim in a fixed order (element d into
// partial sum d % 8, in element order from +0, then ((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7))), times the scale,
// an exact max, then exp-weighted sums in key order (each weight's exp computed alone, the weights and the values
// summed in key order from +0), and each output element divided by the total once. The query heads of one KV head
// share each key's reads, never an operation. Nothing depends on which other rows share the call, so the result
// is the same alone or batched, in prefill or decode, chunked or read from a cached prefix
// (tests/kernels/test_canonical_kernels.py pins every element against a reference of this order).
#include "bf16.h"
#include "canonical.h"
#include "canonical_math.h"
#include "row_max.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int kLanes = 8;
constexpr int kKeysAtOnce = 4;
constexpr int64_t kAhead = 8;  // keys between a fetch and the key's first read

// kLanes floats as one value (GCC/Clang vector extension): lane i of every operation is its own scalar
// multiply or add, so the arithmetic is the same as lane-by-lane loops, whatever SIMD width the CPU has.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
// Two rows' kLanes side by side (one AVX-512 register): two query heads' partial sums against one key, or 16
// elements of a value sum, which is per element and so the same at any width.
typedef float Pair __attribute__((vector_size(2 * kLanes * sizeof(float))));

typedef uint16_t LaneHalves __attribute__((vector_size(kLanes * sizeof(uint16_t))));
typedef uint32_t LaneWords __attribute__((vector_size(kLanes * sizeof(uint32_t))));
typedef uint16_t PairHalves __attribute__((vector_size(2 * kLanes * sizeof(uint16_t))));
typedef uint32_t PairWords __attribute__((vector_size(2 * kLanes * sizeof(uint32_t))));

// A vector of cache elements widened to fp32; bf16 -> fp32 is exact (the bits shifted up 16): the same values
// as an element loop, in a few vector instructions.
template <typename vec_t, typename cache_t>
vec_t load(const cache_t* p) {
  constexpr int width = sizeof(vec_t) / sizeof(float);
  vec_t v;
  if constexpr (std::is_same_v<cache_t, float>) {
    std::memcpy(&v, p, sizeof(v));
  } else if constexpr (std::is_same_v<cache_t, at::BFloat16>) {
    // one widening instruction, where the vector extension splits it in pieces
#if defined(__AVX512F__)
    if constexpr (width == 2 * kLanes) {
      const __m512 values = bi_bench::widened(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      std::memcpy(&v, &values, sizeof(v));
      return v;
    }
#endif
#if defined(__AVX2__)
    if constexpr (width == kLanes) {
      const __m256 values = bi_bench::widened(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      std::memcpy(&v, &values, sizeof(v));
      return v;
    }
#endif
    using Halves = std::conditional_t<width == kLanes, LaneHalves, PairHalves>;
    using Words = std::conditional_t<width == kLanes, LaneWords, PairWords>;
    Halves halves;
    std::memcpy(&halves, p, sizeof(halves));
    const Words words = __builtin_convertvector(halves, Words) << 16;
    std::memcpy(&v, &words, sizeof(v));
  } else {
    for (int i = 0; i < width; ++i) v[i] = static_cast<float>(p[i]);
  }
  return v;
}

// kLanes cache elements widened, in both halves of a Pair. With AVX-512 a load that broadcasts, where widening first
// and then copying one half to the other takes a shuffle more per chunk.
template <typename cache_t>
Pair load_twice(const cache_t* p) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<cache_t, float>) {
    const __m512 twice = _mm512_broadcast_f32x8(_mm256_loadu_ps(p));
    Pair v;
    std::memcpy(&v, &twice, sizeof(v));
    return v;
  } else if constexpr (std::is_same_v<cache_t, at::BFloat16>) {
    const __m512 values =
        bi_bench::widened(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    Pair v;
    std::memcpy(&v, &values, sizeof(v));
    return v;
  }
#endif
  const Lanes k = load<Lanes>(p);
  return __builtin_shufflevector(k, k, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
}

// Dot products of q with `count` keys: element d goes to partial sum d % kLanes, and the kLanes partial sums
// are combined by one fixed tree, the same for every row and key. Several keys at once only interleave
// independent sums, to keep the FPU busy.
template <typename cache_t, int count>
void dots(const float* q, const cache_t* const* keys, int64_t dim, float* out) {
  Lanes lanes[count] = {};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const Lanes q_lanes = load<Lanes>(q + d);
    for (int n = 0; n < count; ++n) lanes[n] += q_lanes * load<Lanes>(keys[n] + d);
  }
  for (; d < dim; ++d) {
    for (int n = 0; n < count; ++n) lanes[n][d % kLanes] += q[d] * static_cast<float>(keys[n][d]);
  }
  for (int n = 0; n < count; ++n) {
    const Lanes& l = lanes[n];
    out[n] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
  }
}

// dots()'s tree on both halves of l at once (a + b is b + a, bit for bit): the first half's sum and the second's.
inline void pair_trees(Pair l, float& first, float& second) {
  // lane i of each half, after each line: l[i] + l[i + 4]; then (l[0] + l[4]) + (l[2] + l[6]) in lane 0 and
  // (l[1] + l[5]) + (l[3] + l[7]) in lane 1; then the two added, dots()'s expression, in lane 0
  l = l + __builtin_shufflevector(l, l, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  l = l + __builtin_shufflevector(l, l, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  l = l + __builtin_shufflevector(l, l, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
  first = l[0];
  second = l[kLanes];
}

// dots() for two query rows at once, q_pair[c] holding both rows' elements c * kLanes .. (c + 1) * kLanes - 1
// side by side (dim a multiple of kLanes): each key's chunk read once for both, each half of a Pair one row's
// partial sums, and dots()'s tree run on both halves together.
template <typename cache_t, int count>
void pair_dots(const Pair* q_pair, const cache_t* const* keys, int64_t dim, float* first, float* second) {
  Pair lanes[count] = {};
  for (int64_t c = 0; c < dim / kLanes; ++c) {
    for (int n = 0; n < count; ++n) lanes[n] += q_pair[c] * load_twice(keys[n] + c * kLanes);
  }
  for (int n = 0; n < count; ++n) pair_trees(lanes[n], first[n], second[n]);
}

// q rows g and g + 1 of a group as pair_dots() reads them.
void pair_rows(const float* q, int64_t dim, Pair* q_pair) {
  for (int64_t c = 0; c < dim / kLanes; ++c) {
    const Lanes a = load<Lanes>(q + c * kLanes), b = load<Lanes>(q + dim + c * kLanes);
    q_pair[c] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  }
}

// The most row pairs group_dots() takes, within AVX-512's 32 vector registers: 4 keys x kMaxDotPairs Pairs of
// partial sums and 2 for an odd row. With AVX2's 16, where a Pair takes two, even one pair and an odd row spill
// (30 layers x 64 rows x 192 keys, the avx2 build: 66-76 -> 101-110 ms), so there a group's rows take the keys
// a pair at a time.
constexpr int kMaxDotPairs = 4;
#if defined(__AVX512F__)
constexpr bool kDotsOfAllRows = true;
#else
constexpr bool kDotsOfAllRows = false;
#endif

// dots() of a group's rows with kKeysAtOnce keys, each key's chunk read and widened once for all of them: rows
// 2p and 2p + 1 side by side against the chunk twice, as pair_dots() takes them, and an odd last row, held twice
// in q_twice, against two keys' chunks side by side. q_pairs: pair_rows() of each pair, then the odd row's
// q_twice. Each product times scale goes to scores[r * stride + n] (row r, key n) from the registers that summed
// it (through a buffer of products, each store waited for its reload; with load_twice(), bf16, one thread, 30 layers
// x 64 rows x 192 keys: 20.3 -> 17.3-17.8 ms).
template <typename cache_t, int pairs, bool odd>
void group_dots(const Pair* q_pairs, const cache_t* const* keys, int64_t dim, float scale, float* scores,
                int64_t stride) {
  const int64_t chunks = dim / kLanes;
  const Pair* q_twice = q_pairs + pairs * chunks;
  Pair lanes[pairs + 1][kKeysAtOnce] = {};  // [pairs]: the odd row's key pairs
  for (int64_t c = 0; c < chunks; ++c) {
    Pair twice[kKeysAtOnce];
    for (int n = 0; n < kKeysAtOnce; ++n) twice[n] = load_twice(keys[n] + c * kLanes);
    for (int n = 0; n < kKeysAtOnce; ++n) {
      for (int p = 0; p < pairs; ++p) lanes[p][n] += q_pairs[p * chunks + c] * twice[n];
    }
    if constexpr (odd) {
      for (int n = 0; n < kKeysAtOnce / 2; ++n) {
        lanes[pairs][n] += q_twice[c] * __builtin_shufflevector(twice[2 * n], twice[2 * n + 1], 0, 1, 2, 3, 4, 5, 6,
                                                                7, 16, 17, 18, 19, 20, 21, 22, 23);
      }
    }
  }
  float first, second;
  for (int p = 0; p < pairs; ++p) {
    for (int n = 0; n < kKeysAtOnce; ++n) {
      pair_trees(lanes[p][n], first, second);
      scores[2 * p * stride + n] = first * scale;
      scores[(2 * p + 1) * stride + n] = second * scale;
    }
  }
  for (int n = 0; n < kKeysAtOnce / 2 && odd; ++n) {
    pair_trees(lanes[pairs][n], first, second);
    scores[2 * pairs * stride + 2 * n] = first * scale;
    scores[2 * pairs * stride + 2 * n + 1] = second * scale;
  }
}

// group_dots() for `group` rows (1 to 2 * kMaxDotPairs + 1) given at run time
template <typename cache_t, int pairs = kMaxDotPairs>
void group_dots_of(int64_t group, const Pair* q_pairs, const cache_t* const* keys, int64_t dim, float scale,
                   float* scores, int64_t stride) {
  if (group == 2 * pairs + 1) return group_dots<cache_t, pairs, true>(q_pairs, keys, dim, scale, scores, stride);
  if constexpr (pairs > 0) {
    if (group == 2 * pairs) return group_dots<cache_t, pairs, false>(q_pairs, keys, dim, scale, scores, stride);
    group_dots_of<cache_t, pairs - 1>(group, q_pairs, keys, dim, scale, scores, stride);
  }
}

// The next unit's K and V rows, brought into L2 a few lines at a time while this unit computes from cache (after
// its first pass, which waits on memory), so that memory is not idle between a thread's units (fp32, 30 layers of
// 64 decode rows x 192 keys, 2 threads, medians of three alternated runs: 38.2-41.9 -> 37.1-38.5 ms).
struct Lookahead {
  const char* k = nullptr;
  const char* v = nullptr;
  const std::vector<int64_t>* key_row = nullptr;  // the next unit's key rows; none: nothing to fetch
  int64_t row_bytes = 0, element_bytes = 0, key = 0, line = 0, per_step = 0;

  template <typename cache_t>
  Lookahead(const cache_t* k_cache, const cache_t* v_cache, const std::vector<int64_t>* next_rows,
            int64_t row_length, int64_t steps)
      : k(reinterpret_cast<const char*>(k_cache)), v(reinterpret_cast<const char*>(v_cache)), key_row(next_rows),
        row_bytes(row_length * static_cast<int64_t>(sizeof(cache_t))), element_bytes(sizeof(cache_t)) {
    if (key_row && steps > 0) {
      const int64_t lines = static_cast<int64_t>(key_row->size()) * ((row_bytes + 63) / 64);
      per_step = (lines + steps - 1) / steps;
    }
  }
  Lookahead() = default;

  // the next per_step lines of each of K and V
  void step() {
    if (!key_row) return;
    for (int64_t n = 0; n < per_step && key < static_cast<int64_t>(key_row->size()); ++n) {
      const int64_t at = (*key_row)[key] * element_bytes + line;
      __builtin_prefetch(k + at, 0, 1);
      __builtin_prefetch(v + at, 0, 1);
      line += 64;
      if (line >= row_bytes) line = 0, ++key;
    }
  }
};

// The rows' value sums kept in registers at once: kSumRows rows x kSumChunks Pairs of elements (30 layers x 64 rows
// x 192 keys: with AVX-512 4 x 4 against one row at a time, bf16 17.1-18.9 -> 16.2-17.0 ms; with the avx2 build,
// whose 16 registers hold half as much, 2 x 4 against one row, bf16 71-72 -> 60 ms, fp32 72 -> 67).
#if defined(__AVX512F__)
constexpr int kSumRows = 4, kSumChunks = 4;
#else
constexpr int kSumRows = 2, kSumChunks = 4;
#endif

// out[r * dim + d] = the sum over keys j, in key order from +0, of weights[r * keys + j] * v_j[d] (one multiply,
// one add per key), for `rows` rows of a group and `chunks` Pairs of elements; v_j starts at
// v_cache + key_row[j] + offset. Each key's values are read and widened once for all the rows; every row's sums are
// the ones it would make alone. totals[r]: the sum of row r's weights in key order from +0, a chain of adds per row
// that the vector work of each key hides (in a pass of their own each add waited on the one before: with the max
// below, bf16, one thread, 30 layers x 64 rows x 192 keys: 24.1 -> 20.3 ms);
// each sum is stored divided by its row's total.
template <typename cache_t, int rows, int chunks>
void weighted_sums(const float* weights, int64_t keys, const cache_t* v_cache, const std::vector<int64_t>& key_row,
                   int64_t offset, int64_t dim, float* out, float* totals, Lookahead& ahead) {
  Pair acc[rows][chunks] = {};
  float sums[rows] = {};
  for (int64_t j = 0; j < keys; ++j) {
    ahead.step();
    const cache_t* v = v_cache + key_row[j] + offset;
    Pair values[chunks];
    for (int c = 0; c < chunks; ++c) values[c] = load<Pair>(v + c * 2 * kLanes);
    for (int r = 0; r < rows; ++r) {
      const float weight = weights[r * keys + j];
      sums[r] += weight;
      for (int c = 0; c < chunks; ++c) acc[r][c] += weight * values[c];
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < chunks; ++c) acc[r][c] /= sums[r];
    std::memcpy(out + r * dim, acc[r], sizeof(acc[r]));
    totals[r] = sums[r];
  }
}

// weighted_sums() with rows in 1..kSumRows and chunks in 1..kSumChunks given at run time
template <typename cache_t, int rows = kSumRows, int chunks = kSumChunks>
void weighted_sums_of(int64_t row_count, int64_t chunk_count, const float* weights, int64_t keys,
                      const cache_t* v_cache, const std::vector<int64_t>& key_row, int64_t offset, int64_t dim,
                      float* out, float* totals, Lookahead& ahead) {
  if (row_count == rows && chunk_count == chunks) {
    return weighted_sums<cache_t, rows, chunks>(weights, keys, v_cache, key_row, offset, dim, out, totals, ahead);
  }
  if constexpr (chunks > 1) {
    return weighted_sums_of<cache_t, rows, chunks - 1>(row_count, chunk_count, weights, keys, v_cache, key_row,
                                                       offset, dim, out, totals, ahead);
  } else if constexpr (rows > 1) {
    return weighted_sums_of<cache_t, rows - 1, kSumChunks>(row_count, chunk_count, weights, keys, v_cache, key_row,
                                                           offset, dim, out, totals, ahead);
  }
}

// Passes over the keys, each a Lookahead step per key, that group_weighted_sums() makes for `group` rows of `dim`
// elements.
int64_t weighted_sum_passes(int64_t group, int64_t dim) {
  constexpr int64_t kPair = 2 * kLanes;
  return (group + kSumRows - 1) / kSumRows * ((dim / kPair + kSumChunks - 1) / kSumChunks);
}

// The same sums for the `group` rows of a group over all `dim` elements: register tiles of up to kSumRows rows and
// kSumChunks Pairs, then the elements past the last whole Pair one by one; each divided by its row's total.
template <typename cache_t>
void group_weighted_sums(const float* weights, int64_t keys, int64_t group, const cache_t* v_cache,
                         const std::vector<int64_t>& key_row, int64_t offset, int64_t dim, float* out, float* totals,
                         Lookahead& ahead) {
  constexpr int64_t kPair = 2 * kLanes;
  const int64_t whole = dim / kPair * kPair;
  for (int64_t g = 0; g < group; g += kSumRows) {
    const int64_t rows = std::min<int64_t>(kSumRows, group - g);
    for (int64_t d = 0; d < whole; d += kSumChunks * kPair) {
      weighted_sums_of(rows, std::min<int64_t>(kSumChunks, (whole - d) / kPair), weights + g * keys, keys, v_cache,
                       key_row, offset + d, dim, out + g * dim + d, totals + g, ahead);
    }
    for (int64_t r = g; r < g + rows && whole == 0; ++r) {  // a head narrower than a Pair: no tile summed them
      totals[r] = 0.f;
      for (int64_t j = 0; j < keys; ++j) totals[r] += weights[r * keys + j];
    }
    for (int64_t r = g; r < g + rows && whole < dim; ++r) {
      for (int64_t d = whole; d < dim; ++d) {
        float acc = 0.f;
        for (int64_t j = 0; j < keys; ++j) {
          acc += weights[r * keys + j] * static_cast<float>(v_cache[key_row[j] + offset + d]);
        }
        out[r * dim + d] = acc / totals[r];
      }
    }
  }
}

// Where each of keys first .. end-1 of a sequence starts in the cache (its token's row, all KV heads), through
// the block table.
void key_rows(const int32_t* table, int64_t first, int64_t end, int64_t block_size, int64_t token_stride,
              std::vector<int64_t>& rows) {
  rows.resize(end - first);
  for (int64_t j = first; j < end;) {
    const int64_t block = j / block_size, start = block * block_size, stop = std::min(end, start + block_size);
    const int64_t slot = static_cast<int64_t>(table[block]) * block_size - start;  // key j sits in slot + j
    for (; j < stop; ++j) rows[j - first] = (slot + j) * token_stride;
  }
}

// Asks for `length` elements of K and V from k and v to be brought into cache. A unit that holds a token's every
// head passes over each key once per KV head, and each pass reads a slice of the key's row (all KV heads side by
// side): left to itself, every slice waits on its own misses, with few in flight. Its first pass asks for each
// key's whole K and V rows kAhead keys early instead, so the misses overlap and every later pass, and every
// weighted sum, reads from cache (fp32, 64 decode rows of 192 keys: 54 -> 37 ms per 30-layer step).
void fetch_lines(const void* p, int64_t bytes) {
  const char* at = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(at + b, 0, 3);
}

template <typename cache_t>
void fetch(const cache_t* k, const cache_t* v, int64_t length) {
  fetch_lines(k, length * static_cast<int64_t>(sizeof(cache_t)));
  fetch_lines(v, length * static_cast<int64_t>(sizeof(cache_t)));
}

// The `group` query heads that share one KV head, for one token: each key is read once for all of them (the
// values once per row, an output tile in registers, from cache after the first row), while every row keeps its
// own scores, max, total and output, accumulated in key order as if alone.
// key_row[j]: where the row of the rows' j-th key starts in the cache; the KV head sits kv_offset into it.
// fetch_length > 0: the first pass over these keys, which fetches `fetch_length` elements of each key's row, from
// element fetch_offset on, kAhead keys before the key is read.
template <typename cache_t>
void attend_group(const float* q, const cache_t* k_cache, const cache_t* v_cache, const std::vector<int64_t>& key_row,
                  int64_t kv_offset, int64_t dim, int64_t group, float scale, std::vector<float>& scores,
                  std::vector<Pair>& q_pairs, float* out, int64_t fetch_offset, int64_t fetch_length,
                  Lookahead& ahead) {
  const auto offset_of = [&](int64_t j) { return key_row[j] + kv_offset; };
  const int64_t keys = static_cast<int64_t>(key_row.size());
  scores.resize(group * (keys + 1));
  float* totals = scores.data() + group * keys;
  const cache_t* k[kKeysAtOnce];
  float products[kKeysAtOnce], second[kKeysAtOnce];
  // rows taken two at a time, where the head's elements fill whole Lanes; whole key strides of a group that
  // group_dots() holds take all its rows at once (an odd last row twice over, after the pairs)
  const int64_t pairs = dim % kLanes == 0 ? group / 2 * 2 : 0, chunks = dim / kLanes;
  const bool all_rows_at_once = kDotsOfAllRows && dim % kLanes == 0 && group <= 2 * kMaxDotPairs + 1;
  q_pairs.resize((pairs / 2 + (all_rows_at_once && group % 2 == 1)) * chunks);
  for (int64_t g = 0; g < pairs; g += 2) pair_rows(q + g * dim, dim, q_pairs.data() + g / 2 * chunks);
  if (all_rows_at_once && group % 2 == 1) {
    const float* last = q + (group - 1) * dim;
    for (int64_t c = 0; c < chunks; ++c) q_pairs[pairs / 2 * chunks + c] = load_twice(last + c * kLanes);
  }
  for (int64_t j = 0; j < keys;) {
    const int64_t count = std::min<int64_t>(kKeysAtOnce, keys - j);
    if (fetch_length == 0) {
      for (int64_t n = 0; n < count; ++n) ahead.step();
    }
    for (int64_t n = 0; n < count; ++n) k[n] = k_cache + offset_of(j + n);
    for (int64_t n = j + kAhead; n < std::min(keys, j + kAhead + count) && fetch_length > 0; ++n) {
      fetch(k_cache + key_row[n] + fetch_offset, v_cache + key_row[n] + fetch_offset, fetch_length);
    }
    const auto record = [&](int64_t g, const float* products) {
      for (int64_t n = 0; n < count; ++n) scores[g * keys + j + n] = products[n] * scale;
    };
    if (count == kKeysAtOnce && all_rows_at_once) {
      group_dots_of(group, q_pairs.data(), k, dim, scale, scores.data() + j, keys);
      j += count;
      continue;
    }
    int64_t g = 0;
    for (; g < pairs; g += 2) {
      const Pair* q_pair = q_pairs.data() + g / 2 * (dim / kLanes);
      if (count == kKeysAtOnce) {
        pair_dots<cache_t, kKeysAtOnce>(q_pair, k, dim, products, second);
      } else {
        for (int64_t n = 0; n < count; ++n) pair_dots<cache_t, 1>(q_pair, k + n, dim, products + n, second + n);
      }
      record(g, products);
      record(g + 1, second);
    }
    for (; g < group; ++g) {
      if (count == kKeysAtOnce) {
        dots<cache_t, kKeysAtOnce>(q + g * dim, k, dim, products);
      } else {
        for (int64_t n = 0; n < count; ++n) dots<cache_t, 1>(q + g * dim, k + n, dim, products + n);
      }
      record(g, products);
    }
    j += count;
  }
  // Each weight is its own exp, so one pass over a row's scores computes them all (a loop the compiler
  // vectorizes: the same operations per element). The max is taken after the dot products, in a scan of its own:
  // kept per key, it was a chain through memory (with the totals' change: 24.1 -> 20.3 ms, see weighted_sums).
  for (int64_t g = 0; g < group; ++g) {
    float* row = scores.data() + g * keys;
    const float max = bi_bench::row_max(row, keys);
    for (int64_t j = 0; j < keys; ++j) row[j] = bi_bench::exp(row[j] - max);
  }
  group_weighted_sums(scores.data(), keys, group, v_cache, key_row, kv_offset, dim, out, totals, ahead);
}

template <typename cache_t>
void attend_all(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                const at::Tensor& row_seq, const at::Tensor& row_keys, const at::Tensor& block_tables,
                double scale, int64_t window, at::Tensor& out) {
  const int64_t tokens = q.size(0), heads = q.size(1), dim = q.size(2);
  const int64_t block_size = k_cache.size(1), kv_heads = k_cache.size(2);
  const int64_t group = heads / kv_heads, token_stride = kv_heads * dim, width = block_tables.size(1);
  const float* q_data = q.data_ptr<float>();
  const cache_t* k_data = k_cache.data_ptr<cache_t>();
  const cache_t* v_data = v_cache.data_ptr<cache_t>();
  const int64_t* seq_data = row_seq.data_ptr<int64_t>();
  const int64_t* keys_data = row_keys.data_ptr<int64_t>();
  const int32_t* table_data = block_tables.data_ptr<int32_t>();
  float* out_data = out.data_ptr<float>();
  // Query heads h*group .. h*group+group-1 attend to KV head h, and sit next to each other in q and out. A unit is one
  // token's rows: all its heads while there are tokens enough to keep the threads busy (its keys' and values' rows, all
  // KV heads side by side in the cache, are then read whole by one core instead of a head's slice by each of several),
  // else one KV head's group of them while there are two for each thread (each KV head's slice then read once for its
  // query heads: two bf16 decode rows, 30 layers of ~165 keys, 0.74-0.82 -> 0.46-0.59 ms a step against one head a
  // unit), else one head. Every row's sums are its own either way. Units are handed out dynamically, since causal
  // prefill rows see very different numbers of keys, each thread claiming its next unit one ahead, so that a unit of a
  // token's every head can fetch the next one's keys while it computes (unless they are the same sequence's, already in
  // cache).
  const int64_t threads = at::get_num_threads();
  const int64_t per_unit = threads == 1 || tokens >= 4 * threads ? heads
                           : tokens * kv_heads >= 2 * threads    ? group
                                                                 : 1;
  const int64_t per_call = std::min(per_unit, group), units = tokens * heads / per_unit;
  const bool whole_rows = per_unit == heads;
  const auto token_of = [&](int64_t unit) { return unit * per_unit / heads; };
  const auto keys_of = [&](int64_t unit, std::vector<int64_t>& rows) {
    const int64_t token = token_of(unit), end = keys_data[token];
    const int64_t first = window > 0 ? std::max<int64_t>(0, end - window) : 0;
    key_rows(table_data + seq_data[token] * width, first, end, block_size, token_stride, rows);
  };
  std::atomic<int64_t> claimed{0};
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores;
    std::vector<Pair> q_pairs;
    std::vector<int64_t> rows, next_rows;
    int64_t unit = claimed++;
    if (unit < units) keys_of(unit, rows);
    while (unit < units) {
      const int64_t next = claimed++;
      if (next < units) {
        keys_of(next, next_rows);
        // its queries too: a prefill unit's few keys are in cache already, and its q rows were each waited on (with
        // the division folded into the sums, 16 prompts x 128 tokens, 30 layers, 2 threads, fp32: 106-109 -> 86-98 ms)
        fetch_lines(q_data + next * per_unit * dim, per_unit * dim * static_cast<int64_t>(sizeof(float)));
      }
      const bool fetch_next =
          whole_rows && next < units && seq_data[token_of(next)] != seq_data[token_of(unit)];
      // this unit's key loops after the first pass: the later groups' dot products and each group's weighted sums
      const int64_t keys = static_cast<int64_t>(rows.size()), groups = per_unit / per_call;
      const int64_t steps = keys * (groups - 1 + groups * weighted_sum_passes(per_call, dim));
      Lookahead ahead = fetch_next ? Lookahead(k_data, v_data, &next_rows, token_stride, steps) : Lookahead();
      // A unit's first pass fetches its keys ahead: a token's every head, their whole rows; a smaller unit, its KV
      // head's slice of them, which the hardware prefetcher alone (a slice of each row, the rows in blocks here and
      // there) left to be waited on key by key (one decode row, 30 layers of ~165 keys, medians of three alternated
      // runs: bf16 0.51 -> 0.39 ms, fp32 0.56 -> 0.50).
      for (int64_t row = unit * per_unit; row < (unit + 1) * per_unit; row += per_call) {
        const int64_t kv_offset = row % heads / group * dim;
        const int64_t fetch_length = !whole_rows ? dim : row == unit * per_unit ? token_stride : 0;
        attend_group(q_data + row * dim, k_data, v_data, rows, kv_offset, dim, per_call, static_cast<float>(scale),
                     scores, q_pairs, out_data + row * dim, whole_rows ? 0 : kv_offset, fetch_length, ahead);
      }
      unit = next;
      std::swap(rows, next_rows);
    }
  }
}

}  // namespace

// q [T, H, D] fp32; caches [blocks, block_size, Hkv, D]; row_seq / row_keys [T] int64: each token's sequence
// and how many keys it sees; block_tables [B, W] int32; window > 0: a row that sees keys 0..p sees only the
// last `window` of them (a sliding-window layer), 0: all. Returns [T, H, D] fp32.
at::Tensor row_attention(at::Tensor q, at::Tensor k_cache, at::Tensor v_cache, at::Tensor row_seq, at::Tensor row_keys,
                         at::Tensor block_tables, double scale, int64_t window) {
  TORCH_CHECK(q.scalar_type() == at::kFloat && q.is_contiguous(), "q must be contiguous float32");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "caches must be contiguous");
  auto out = at::empty_like(q);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, k_cache.scalar_type(), "row_attention", [&] {
    attend_all<scalar_t>(q, k_cache, v_cache, row_seq.contiguous(), row_keys.contiguous(),
                         block_tables.contiguous(), scale, window, out);
  });
  return out;
}
