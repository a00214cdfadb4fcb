"""Gemma 3 text decoder: the Llama family's layers with Gemma's norms, scaling, activation and sliding windows.

Against Llama: RMSNorm scales by (1 + weight); every layer norms its attention and MLP outputs too (post
norms) and the MLP input (pre-feedforward norm); q/k norms; GELU-tanh MLP; embeddings scaled by
sqrt(hidden_size); attention scaled by query_pre_attn_scalar ** -0.5; local layers ("sliding_attention") see a
window of keys and use their own RoPE base, global ones see every key.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding

from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.kernel_set import KernelSet
from bi_bench.engine.layers.activation import GeluTanhAndMul
from bi_bench.engine.layers.embed_head import VocabParallelEmbedding
from bi_bench.engine.layers.layernorm import GemmaRMSNorm
from bi_bench.engine.layers.rotary_embedding import RotaryEmbedding, hf_reference
from bi_bench.engine.models.llama import LlamaAttention, LlamaDecoderLayer, LlamaForCausalLM, LlamaMLP


class Gemma3Attention(LlamaAttention):
    qk_norm = True
    norm_class = GemmaRMSNorm

    def attention_scale(self, config: PretrainedConfig) -> float:
        return config.query_pre_attn_scalar ** -0.5


class Gemma3MLP(LlamaMLP):
    activation_class = GeluTanhAndMul


class Gemma3DecoderLayer(LlamaDecoderLayer):
    attention_class = Gemma3Attention
    mlp_class = Gemma3MLP
    norm_class = GemmaRMSNorm

    def __init__(self, config: PretrainedConfig, kernels: KernelSet, layer_idx: int) -> None:
        super().__init__(config, kernels, layer_idx)
        self.pre_feedforward_layernorm = GemmaRMSNorm(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)
        self.post_feedforward_layernorm = GemmaRMSNorm(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None,
                batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the MLP branch (post-normed) and the residual stream it is still to be added to."""
        hidden, residual = self.input_layernorm(hidden, residual)
        hidden, _ = self.post_attention_layernorm(self.self_attn(hidden, batch))
        hidden, residual = self.pre_feedforward_layernorm(hidden, residual)
        hidden, _ = self.post_feedforward_layernorm(self.mlp(hidden))
        return hidden, residual


class Gemma3Model(nn.Module):
    def __init__(self, config: PretrainedConfig, kernels: KernelSet, layer_class: type[Gemma3DecoderLayer]) -> None:
        super().__init__()
        _check_supported(config)
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size)
        self.embed_scale = config.hidden_size ** 0.5
        reference = hf_reference(Gemma3RotaryEmbedding, config)
        self.rotary = {kind: RotaryEmbedding(reference, kernels.pointwise, f"{kind}_")
                       for kind in set(config.layer_types)}
        self.layer_types = list(config.layer_types)
        self.layers = nn.ModuleList(layer_class(config, kernels, i) for i in range(config.num_hidden_layers))
        self.norm = GemmaRMSNorm(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)

    def forward(self, input_ids: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        hidden = self.embed_tokens(input_ids)
        # HF rounds the fp32 scale to the model dtype before multiplying (sqrt(640) becomes 25.25 in bf16).
        hidden = hidden * torch.tensor(self.embed_scale, dtype=torch.float32).to(hidden.dtype)
        rotary = {kind: emb.cos_sin(batch.positions, hidden.dtype) for kind, emb in self.rotary.items()}
        residual = None
        for kind, layer in zip(self.layer_types, self.layers):
            batch.rotary = rotary[kind]  # the attention reads its layer type's (cos, sin) from the batch
            hidden, residual = layer(hidden, residual, batch)
        return self.norm(hidden, residual)[0]


class Gemma3ForCausalLM(LlamaForCausalLM):
    model_class = Gemma3Model
    layer_class = Gemma3DecoderLayer


def _check_supported(config: PretrainedConfig) -> None:
    """Gemma 3 options this engine does not implement: refused rather than silently ignored."""
    unsupported = {"attn_logit_softcapping": config.attn_logit_softcapping,
                   "final_logit_softcapping": config.final_logit_softcapping,
                   "use_bidirectional_attention": config.use_bidirectional_attention or None}
    for name, value in unsupported.items():
        if value is not None:
            raise ValueError(f"Gemma 3 with {name}={value} is not supported")
    if config.hidden_activation != "gelu_pytorch_tanh":
        raise ValueError(f"Gemma 3 with hidden_activation={config.hidden_activation!r} is not supported")
