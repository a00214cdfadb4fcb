// A stack of Llama decoder layers (no biases, no q/k norm, one rank) in one call: the canonical kernels in the
// order engine/models/llama.py calls them, layer after layer, with the same tensors between them, so the same bits
// without the Python in between. Nothing here reduces: the reduction orders are those of rmsnorm.cpp, matmul.cpp,
// rotary.cpp, row_attention.cpp (through phase_attention.cpp) and pointwise.cpp; the rest is copies (the KV cache
// write).
// Default mode's linears may be the library's instead (`library`: at::linear, F.linear's own call, one per
// weight as the op-by-op engine makes them): then the bits are default mode's, and no claim is made for them.
#include "canonical.h"

#include <ATen/Parallel.h>

#include <cstring>

namespace {

// x against each weight: canonical_linears on packed panels, or the library's linear on the weights as they are
std::vector<at::Tensor> linears(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                                const std::vector<int64_t>& widths, bool library) {
  if (!library) return canonical_linears(x.contiguous(), weights, widths);
  std::vector<at::Tensor> outs;
  for (const auto& weight : weights) outs.push_back(at::linear(x, weight));
  return outs;
}

// K and V rows [tokens, ...] into cache rows slot_mapping[t] of the same shape: what `cache[slot_mapping] = rows`
// does in engine/layers/attention.py, a copy per token without index_put_'s dispatch. Spread over the threads:
// a decode step's copies are mostly the first writes to fresh cache pages, each a page fault.
void write_rows(const at::Tensor& k_cache, const at::Tensor& v_cache, const at::Tensor& k, const at::Tensor& v,
                const at::Tensor& slot_mapping) {
  TORCH_CHECK(k_cache.is_contiguous() && v_cache.is_contiguous() && k.scalar_type() == k_cache.scalar_type() &&
                  v.scalar_type() == v_cache.scalar_type(),
              "llama_stack: the KV cache must be contiguous and of the model's dtype");
  TORCH_CHECK(slot_mapping.scalar_type() == at::kLong && slot_mapping.is_contiguous(), "llama_stack: int64 slots");
  const auto k_rows = k.contiguous(), v_rows = v.contiguous();
  TORCH_CHECK(v_rows.sizes() == k_rows.sizes() && v_cache.sizes() == k_cache.sizes(), "llama_stack: K and V alike");
  const int64_t tokens = k_rows.size(0);
  if (tokens == 0) return;
  const int64_t bytes = k_rows.nbytes() / tokens, capacity = k_cache.nbytes() / bytes;
  const int64_t* slots = slot_mapping.data_ptr<int64_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    TORCH_CHECK(slots[t] >= 0 && slots[t] < capacity, "llama_stack: slot ", slots[t], " outside the KV cache");
  }
  const char* k_from = static_cast<const char*>(k_rows.data_ptr());
  const char* v_from = static_cast<const char*>(v_rows.data_ptr());
  char* k_to = static_cast<char*>(k_cache.data_ptr());
  char* v_to = static_cast<char*>(v_cache.data_ptr());
  at::parallel_for(0, tokens, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      std::memcpy(k_to + slots[t] * bytes, k_from + t * bytes, bytes);
      std::memcpy(v_to + slots[t] * bytes, v_from + t * bytes, bytes);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> llama_layer(const at::Tensor& hidden, const c10::optional<at::Tensor>& residual,
                                               const LlamaLayer& layer, const at::Tensor& cos, const at::Tensor& sin,
                                               const at::Tensor& k_cache, const at::Tensor& v_cache,
                                               const at::Tensor& slot_mapping, const at::Tensor& row_seq,
                                               const at::Tensor& row_keys, const at::Tensor& block_tables,
                                               bool prefill_by_sdpa) {
  const int64_t tokens = hidden.size(0), width = hidden.size(1);
  const int64_t heads = layer.heads, kv_heads = layer.kv_heads, head_dim = layer.head_dim;
  auto [normed, summed] = halving_rmsnorm(hidden, layer.input_norm, residual, layer.eps, false);
  const auto projected =
      linears(normed, layer.qkv, {heads * head_dim, kv_heads * head_dim, kv_heads * head_dim}, layer.library);
  auto [q, k] = apply_rotary(projected[0].view({tokens, heads, head_dim}),
                             projected[1].view({tokens, kv_heads, head_dim}), cos, sin);
  const auto v = projected[2].view({tokens, kv_heads, head_dim});
  write_rows(k_cache, v_cache, k, v, slot_mapping);
  const auto attended = stack_attention(q, k_cache, v_cache, row_seq, row_keys, block_tables, layer.scale,
                                        layer.window, prefill_by_sdpa);
  const auto out = linears(attended.reshape({tokens, heads * head_dim}), {layer.o}, {width}, layer.library)[0];
  auto [mlp_in, mlp_residual] = halving_rmsnorm(out, layer.post_norm, summed, layer.eps, false);
  const auto gated = linears(mlp_in, layer.gate_up, {layer.intermediate, layer.intermediate}, layer.library);
  const auto activated = canonical_silu_mul(gated[0], gated[1]);
  return {linears(activated, {layer.down}, {width}, layer.library)[0], mlp_residual};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> llama_stack(
    const at::Tensor& hidden, const std::vector<std::shared_ptr<LlamaLayer>>& layers, const at::Tensor& cos,
    const at::Tensor& sin, const std::vector<at::Tensor>& k_caches, const std::vector<at::Tensor>& v_caches,
    const at::Tensor& slot_mapping, const at::Tensor& row_seq, const at::Tensor& row_keys,
    const at::Tensor& block_tables, bool prefill_by_sdpa) {
  TORCH_CHECK(!layers.empty() && k_caches.size() == layers.size() && v_caches.size() == layers.size(),
              "llama_stack: one K and one V cache per layer");
  at::Tensor out = hidden;
  c10::optional<at::Tensor> residual;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::tie(out, residual) = llama_layer(out, residual, *layers[i], cos, sin, k_caches[i], v_caches[i],
                                          slot_mapping, row_seq, row_keys, block_tables, prefill_by_sdpa);
  }
  return {out, *residual};
}
