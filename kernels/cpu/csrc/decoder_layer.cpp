// A stack of Llama decoder layers (no biases, no q/k norm, one rank) in one call: the canonical kernels in the
// order engine/models/llama.py calls them, layer after layer, with the same tensors between them, so the same bits
// without the Python in between. Nothing here reduces: the reduction orders are those of rmsnorm.cpp, matmul.cpp,
// rotary.cpp, row_attention.cpp and pointwise.cpp; the rest is copies (the KV cache write) and one elementwise
// multiply.
// Default mode's linears may be the library's instead (`library`: at::linear, F.linear's own call, one per
// weight as the op-by-op engine makes them): then the bits are default mode's, and no claim is made for them.
#include "canonical.h"

namespace {

// x against each weight: canonical_linears on packed panels, or the library's linear on the weights as they are
std::vector<at::Tensor> linears(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                                const std::vector<int64_t>& widths, bool library) {
  if (!library) return canonical_linears(x.contiguous(), weights, widths);
  std::vector<at::Tensor> outs;
  for (const auto& weight : weights) outs.push_back(at::linear(x, weight));
  return outs;
}

std::tuple<at::Tensor, at::Tensor> llama_layer(const at::Tensor& hidden, const c10::optional<at::Tensor>& residual,
                                               const LlamaLayer& layer, const at::Tensor& cos, const at::Tensor& sin,
                                               const at::Tensor& k_cache, const at::Tensor& v_cache,
                                               const at::Tensor& slot_mapping, const at::Tensor& row_seq,
                                               const at::Tensor& row_keys, const at::Tensor& block_tables) {
  const int64_t tokens = hidden.size(0), width = hidden.size(1);
  const int64_t heads = layer.heads, kv_heads = layer.kv_heads, head_dim = layer.head_dim;
  auto [normed, summed] = halving_rmsnorm(hidden, layer.input_norm, residual, layer.eps, false);
  const auto projected =
      linears(normed, layer.qkv, {heads * head_dim, kv_heads * head_dim, kv_heads * head_dim}, layer.library);
  auto [q, k] = apply_rotary(projected[0].view({tokens, heads, head_dim}),
                             projected[1].view({tokens, kv_heads, head_dim}), cos, sin);
  const auto v = projected[2].view({tokens, kv_heads, head_dim});
  k_cache.view({-1, kv_heads, head_dim}).index_put_({slot_mapping}, k);
  v_cache.view({-1, kv_heads, head_dim}).index_put_({slot_mapping}, v);
  const auto attended = row_attention(q.to(at::kFloat).contiguous(), k_cache, v_cache, row_seq, row_keys,
                                      block_tables, layer.scale, layer.window).to(q.scalar_type());
  const auto out = linears(attended.reshape({tokens, heads * head_dim}), {layer.o}, {width}, layer.library)[0];
  auto [mlp_in, mlp_residual] = halving_rmsnorm(out, layer.post_norm, summed, layer.eps, false);
  const auto gated = linears(mlp_in, layer.gate_up, {layer.intermediate, layer.intermediate}, layer.library);
  const auto activated = at::mul(canonical_silu(gated[0]), gated[1]);
  return {linears(activated, {layer.down}, {width}, layer.library)[0], mlp_residual};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> llama_stack(
    const at::Tensor& hidden, const std::vector<std::shared_ptr<LlamaLayer>>& layers, const at::Tensor& cos,
    const at::Tensor& sin, const std::vector<at::Tensor>& k_caches, const std::vector<at::Tensor>& v_caches,
    const at::Tensor& slot_mapping, const at::Tensor& row_seq, const at::Tensor& row_keys,
    const at::Tensor& block_tables) {
  TORCH_CHECK(!layers.empty() && k_caches.size() == layers.size() && v_caches.size() == layers.size(),
              "llama_stack: one K and one V cache per layer");
  at::Tensor out = hidden;
  c10::optional<at::Tensor> residual;
  for (size_t i = 0; i < layers.size(); ++i) {
    std::tie(out, residual) = llama_layer(out, residual, *layers[i], cos, sin, k_caches[i], v_caches[i],
                                          slot_mapping, row_seq, row_keys, block_tables);
  }
  return {out, *residual};
}
