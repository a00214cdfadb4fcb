// Paged causal attention with one program per (query token, head): the row owns its whole reduction.
//
// Every row walks its own keys in position order: dot products over head_dim in a fixed order, an exact max,
// then exp-weighted sums in key order. Nothing depends on which other rows share the call, so the result
// is the same alone or batched, in prefill or decode, chunked or read from a cached prefix.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

constexpr int kLanes = 8;

// Dot product with kLanes partial sums combined by one fixed tree: the same order for every row.
template <typename cache_t>
float dot(const float* q, const cache_t* k, int64_t dim) {
  float lanes[kLanes] = {0.f};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) {
      lanes[lane] += q[d + lane] * static_cast<float>(k[d + lane]);
    }
  }
  for (; d < dim; ++d) {
    lanes[d % kLanes] += q[d] * static_cast<float>(k[d]);
  }
  float pairs[kLanes / 2];
  for (int lane = 0; lane < kLanes / 2; ++lane) pairs[lane] = lanes[lane] + lanes[lane + kLanes / 2];
  return (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]);
}

template <typename cache_t>
void attend_row(const float* q, const cache_t* k_cache, const cache_t* v_cache, const int32_t* table,
                int64_t keys, int64_t block_size, int64_t token_stride, int64_t kv_offset, int64_t dim,
                float scale, std::vector<float>& scores, float* out) {
  const auto offset_of = [&](int64_t j) {  // key j's vector within the cache, through the block table
    return (static_cast<int64_t>(table[j / block_size]) * block_size + j % block_size) * token_stride + kv_offset;
  };
  scores.resize(keys);
  float row_max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < keys; ++j) {
    scores[j] = dot(q, k_cache + offset_of(j), dim) * scale;
    row_max = std::max(row_max, scores[j]);
  }
  float total = 0.f;
  for (int64_t d = 0; d < dim; ++d) out[d] = 0.f;
  for (int64_t j = 0; j < keys; ++j) {
    const cache_t* v = v_cache + offset_of(j);
    const float weight = std::exp(scores[j] - row_max);
    total += weight;
    for (int64_t d = 0; d < dim; ++d) out[d] += weight * static_cast<float>(v[d]);
  }
  for (int64_t d = 0; d < dim; ++d) out[d] /= total;
}

template <typename cache_t>
void attend_all(const torch::Tensor& q, const torch::Tensor& k_cache, const torch::Tensor& v_cache,
                const torch::Tensor& row_seq, const torch::Tensor& row_keys, const torch::Tensor& block_tables,
                double scale, torch::Tensor& out) {
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
  at::parallel_for(0, tokens * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t token = row / heads, head = row % heads;
      attend_row(q_data + row * dim, k_data, v_data, table_data + seq_data[token] * width, keys_data[token],
                 block_size, token_stride, (head / group) * dim, dim, static_cast<float>(scale), scores,
                 out_data + row * dim);
    }
  });
}

}  // namespace

// q [T, H, D] fp32; caches [blocks, block_size, Hkv, D]; row_seq / row_keys [T] int64: each token's sequence
// and how many keys it sees; block_tables [B, W] int32. Returns [T, H, D] fp32.
torch::Tensor row_attention(torch::Tensor q, torch::Tensor k_cache, torch::Tensor v_cache, torch::Tensor row_seq,
                            torch::Tensor row_keys, torch::Tensor block_tables, double scale) {
  TORCH_CHECK(q.scalar_type() == torch::kFloat32 && q.is_contiguous(), "q must be contiguous float32");
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous(), "caches must be contiguous");
  auto out = torch::empty_like(q);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, k_cache.scalar_type(), "row_attention", [&] {
    attend_all<scalar_t>(q, k_cache, v_cache, row_seq.contiguous(), row_keys.contiguous(),
                         block_tables.contiguous(), scale, out);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("row_attention", &row_attention); }
