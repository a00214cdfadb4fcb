// Paged causal attention in which every (query token, head) row owns its whole reduction.
//
// Every row walks its own keys in position order: dot products over head_dim in a fixed order, an exact max,
// then exp-weighted sums in key order (each weight's exp computed alone, the weights and the values summed in
// key order). Nothing depends on which other rows share the call, so the result
// is the same alone or batched, in prefill or decode, chunked or read from a cached prefix.
#include "canonical.h"
#include "canonical_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr int kLanes = 8;
constexpr int kKeysAtOnce = 4;

// kLanes floats as one value (GCC/Clang vector extension): lane i of every operation is its own scalar
// multiply or add, so the arithmetic is the same as lane-by-lane loops, whatever SIMD width the CPU has.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

template <typename cache_t>
Lanes load_lanes(const cache_t* p) {
  Lanes v;
  for (int lane = 0; lane < kLanes; ++lane) v[lane] = static_cast<float>(p[lane]);
  return v;
}

template <>
Lanes load_lanes<float>(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// bf16 -> fp32 is exact (the bits shifted up 16): the same values as the lane loop, in a few vector instructions.
template <>
Lanes load_lanes<at::BFloat16>(const at::BFloat16* p) {
  typedef uint16_t Halves __attribute__((vector_size(kLanes * sizeof(uint16_t))));
  typedef uint32_t Words __attribute__((vector_size(kLanes * sizeof(uint32_t))));
  Halves halves;
  std::memcpy(&halves, p, sizeof(halves));
  const Words words = __builtin_convertvector(halves, Words) << 16;
  Lanes v;
  std::memcpy(&v, &words, sizeof(v));
  return v;
}

// Dot products of q with `count` keys: element d goes to partial sum d % kLanes, and the kLanes partial sums
// are combined by one fixed tree, the same for every row and key. Several keys at once only interleave
// independent sums, to keep the FPU busy.
template <typename cache_t, int count>
void dots(const float* q, const cache_t* const* keys, int64_t dim, float* out) {
  Lanes lanes[count] = {};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const Lanes q_lanes = load_lanes(q + d);
    for (int n = 0; n < count; ++n) lanes[n] += q_lanes * load_lanes(keys[n] + d);
  }
  for (; d < dim; ++d) {
    for (int n = 0; n < count; ++n) lanes[n][d % kLanes] += q[d] * static_cast<float>(keys[n][d]);
  }
  for (int n = 0; n < count; ++n) {
    const Lanes& l = lanes[n];
    out[n] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
  }
}

// out += weight * v, element by element.
template <typename cache_t>
void add_scaled(float* out, float weight, const cache_t* v, int64_t dim) {
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    Lanes o = load_lanes(out + d);
    o += weight * load_lanes(v + d);
    std::memcpy(out + d, &o, sizeof(o));
  }
  for (; d < dim; ++d) out[d] += weight * static_cast<float>(v[d]);
}

// The `group` query heads that share one KV head, for one token: each key and value is read once for all of
// them, while every row keeps its own scores, max, total and output, accumulated in key order as if alone.
// The rows see keys first .. end-1.
template <typename cache_t>
void attend_group(const float* q, const cache_t* k_cache, const cache_t* v_cache, const int32_t* table,
                  int64_t first, int64_t end, int64_t block_size, int64_t token_stride, int64_t kv_offset,
                  int64_t dim, int64_t group, float scale, std::vector<float>& scores, float* out) {
  const auto offset_of = [&](int64_t j) {  // key j's vector within the cache, through the block table
    return (static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size) * token_stride + kv_offset;
  };
  const int64_t keys = end - first;
  scores.resize(group * keys);
  std::vector<float> row_max(group, -std::numeric_limits<float>::infinity()), total(group, 0.f);
  const cache_t* k[kKeysAtOnce];
  float products[kKeysAtOnce];
  for (int64_t j = 0; j < keys;) {
    const int64_t count = std::min<int64_t>(kKeysAtOnce, keys - j);
    for (int64_t n = 0; n < count; ++n) k[n] = k_cache + offset_of(first + j + n);
    for (int64_t g = 0; g < group; ++g) {
      if (count == kKeysAtOnce) {
        dots<cache_t, kKeysAtOnce>(q + g * dim, k, dim, products);
      } else {
        for (int64_t n = 0; n < count; ++n) dots<cache_t, 1>(q + g * dim, k + n, dim, products + n);
      }
      for (int64_t n = 0; n < count; ++n) {
        const float score = products[n] * scale;
        scores[g * keys + j + n] = score;
        row_max[g] = std::max(row_max[g], score);
      }
    }
    j += count;
  }
  // Each weight is its own exp, so one pass over a row's scores computes them all (a loop the compiler
  // vectorizes: the same operations per element); the totals are then summed in key order.
  for (int64_t g = 0; g < group; ++g) {
    float* row = scores.data() + g * keys;
    const float max = row_max[g];
    for (int64_t j = 0; j < keys; ++j) row[j] = bi_bench::exp(row[j] - max);
    for (int64_t j = 0; j < keys; ++j) total[g] += row[j];
  }
  for (int64_t i = 0; i < group * dim; ++i) out[i] = 0.f;
  for (int64_t j = 0; j < keys; ++j) {
    const cache_t* v = v_cache + offset_of(first + j);
    for (int64_t g = 0; g < group; ++g) add_scaled(out + g * dim, scores[g * keys + j], v, dim);
  }
  for (int64_t g = 0; g < group; ++g) {
    for (int64_t d = 0; d < dim; ++d) out[g * dim + d] /= total[g];
  }
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
  // Query heads h*group .. h*group+group-1 attend to KV head h, and sit next to each other in q and out. A unit
  // is one token's heads of one KV head, or, when that leaves threads idle (a decode step of few tokens), one of
  // them: every row's sums are its own either way. Units are handed out dynamically: causal prefill rows see very
  // different numbers of keys.
  const int64_t threads = at::get_num_threads();
  const int64_t per_unit = threads == 1 || tokens * kv_heads >= 4 * threads ? group : 1;
  const int64_t units = tokens * heads / per_unit;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic)
    for (int64_t unit = 0; unit < units; ++unit) {
      const int64_t first_row = unit * per_unit, token = first_row / heads, kv_head = first_row % heads / group;
      const int64_t end = keys_data[token];
      const int64_t first = window > 0 ? std::max<int64_t>(0, end - window) : 0;
      attend_group(q_data + first_row * dim, k_data, v_data, table_data + seq_data[token] * width, first, end,
                   block_size, token_stride, kv_head * dim, dim, per_unit, static_cast<float>(scale), scores,
                   out_data + first_row * dim);
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
