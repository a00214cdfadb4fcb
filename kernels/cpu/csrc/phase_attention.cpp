// The decoder stack's attention: every row by the row program, or (default mode's cpu_phase_split) the calls
// kernels/cpu/phase_attention.py makes: decode rows by the row program, each prefill sequence by
// scaled_dot_product_attention as kernels/generic/attention.py's attention_sdpa calls it, on the same tensors, so the
// same bits. SDPA's order is not ours: under phase split a token's bits depend on its phase, which is what default
// mode's prefix_cache and prefill_decode controls show.
#include "canonical.h"

#include <utility>
#include <vector>

namespace {

// The first `length` cached tokens of a sequence, [Hkv, length, D], as gather_context reads them
at::Tensor gather_context(const at::Tensor& cache, const at::Tensor& block_table, int64_t length) {
  const int64_t block_size = cache.size(1);
  const auto blocks = block_table.slice(0, 0, (length + block_size - 1) / block_size).to(at::kLong);
  return cache.flatten(1).index_select(0, blocks).view({-1, cache.size(2), cache.size(3)}).slice(0, 0, length)
      .transpose(0, 1);
}

// Which of `length` keys the queries at positions length - queries .. length - 1 see, as in_window decides
at::Tensor visible(int64_t queries, int64_t length, int64_t window) {
  const auto keys = at::arange(length).unsqueeze(0);
  const auto positions = at::arange(length - queries, length).unsqueeze(1);
  const auto causal = keys.le(positions);
  return window > 0 ? causal.logical_and(keys.gt(positions - window)) : causal;
}

}  // namespace

at::Tensor stack_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                           const at::Tensor& row_seq, const at::Tensor& row_keys, const at::Tensor& block_tables,
                           double scale, int64_t window, bool prefill_by_sdpa) {
  const auto by_rows = [&](const at::Tensor& rows_q, const at::Tensor& seqs, const at::Tensor& rows_keys) {
    return row_attention(rows_q.to(at::kFloat).contiguous(), k_cache, v_cache, seqs, rows_keys, block_tables, scale,
                         window).to(q.scalar_type());
  };
  if (!prefill_by_sdpa) return by_rows(q, row_seq, row_keys);
  const int64_t tokens = q.size(0);
  const int64_t* seq = row_seq.data_ptr<int64_t>();
  const int64_t* keys = row_keys.data_ptr<int64_t>();
  std::vector<int64_t> decode_rows;
  std::vector<std::pair<int64_t, int64_t>> prefills;  // each prefill sequence's rows [first, end)
  for (int64_t first = 0, end = 0; first < tokens; first = end) {
    for (end = first + 1; end < tokens && seq[end] == seq[first];) ++end;
    if (end - first == 1) {
      decode_rows.push_back(first);
    } else {
      prefills.emplace_back(first, end);
    }
  }
  if (prefills.empty()) return by_rows(q, row_seq, row_keys);
  auto out = at::empty_like(q);
  if (!decode_rows.empty()) {
    const auto rows = at::tensor(decode_rows, row_seq.options());
    out.index_put_({rows}, by_rows(q.index_select(0, rows), row_seq.index_select(0, rows),
                                   row_keys.index_select(0, rows)));
  }
  for (const auto& [first, end] : prefills) {
    const int64_t length = keys[end - 1];
    const auto table = block_tables[seq[first]];
    const auto k = gather_context(k_cache, table, length).to(q.scalar_type()).unsqueeze(0);
    const auto v = gather_context(v_cache, table, length).to(q.scalar_type()).unsqueeze(0);
    out.slice(0, first, end).copy_(
        at::scaled_dot_product_attention(q.slice(0, first, end).transpose(0, 1).unsqueeze(0), k, v,
                                         visible(end - first, length, window), 0.0, false, scale, true)[0]
            .transpose(0, 1));
  }
  return out;
}
