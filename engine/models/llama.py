"""Llama-family decoder (Llama, SmolLM2; Qwen2 adds qkv bias, Qwen3 adds q/k norm; Gemma 3 builds on it)."""
from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from bi_bench.engine.distributed.parallel_state import current_group
from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.kernel_set import KernelSet
from bi_bench.engine.layers.activation import SiluAndMul
from bi_bench.engine.layers.attention import PagedAttention
from bi_bench.engine.layers.embed_head import ParallelLMHead, VocabParallelEmbedding
from bi_bench.engine.layers.fused_decoder import FusedStack, fusable, fused_forward, library_linears, prefill_by_sdpa
from bi_bench.engine.layers.layernorm import RMSNorm
from bi_bench.engine.layers.linear import ColumnParallelLinear, RowParallelLinear, shared_input
from bi_bench.engine.layers.rotary_embedding import RotaryEmbedding, hf_reference


def head_dim_of(config: PretrainedConfig) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def sliding_window_of(config: PretrainedConfig, layer_idx: int) -> int | None:
    """The window of a layer Hugging Face types "sliding_attention" (Gemma 3's local layers; Qwen2/3's with
    use_sliding_window); None for full attention."""
    layer_types = getattr(config, "layer_types", None)
    return config.sliding_window if layer_types and layer_types[layer_idx] == "sliding_attention" else None


class LlamaAttention(nn.Module):
    qkv_bias = False
    qk_norm = False
    norm_class = RMSNorm

    def __init__(self, config: PretrainedConfig, kernels: KernelSet, layer_idx: int) -> None:
        super().__init__()
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = head_dim_of(config)
        bias = self.qkv_bias or getattr(config, "attention_bias", False)
        hidden = config.hidden_size
        self.q_proj = ColumnParallelLinear(hidden, heads * self.head_dim, bias, kernels.matmul)
        self.k_proj = ColumnParallelLinear(hidden, kv_heads * self.head_dim, bias, kernels.matmul)
        self.v_proj = ColumnParallelLinear(hidden, kv_heads * self.head_dim, bias, kernels.matmul)
        self.pointwise = kernels.pointwise
        o_bias = getattr(config, "attention_bias", False)
        self.o_proj = RowParallelLinear(heads * self.head_dim, hidden, o_bias, kernels.matmul)
        tp = current_group().size
        self.num_heads, self.num_kv_heads = heads // tp, kv_heads // tp  # this rank's heads
        if self.qk_norm:
            self.q_norm = self.norm_class(self.head_dim, config.rms_norm_eps, kernels.rmsnorm)
            self.k_norm = self.norm_class(self.head_dim, config.rms_norm_eps, kernels.rmsnorm)
        self.attn = PagedAttention(self.num_heads, self.num_kv_heads, self.head_dim, kernels.attention,
                                   self.attention_scale(config), sliding_window_of(config, layer_idx))

    def attention_scale(self, config: PretrainedConfig) -> float:
        return self.head_dim ** -0.5

    def forward(self, hidden: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        tokens = hidden.shape[0]
        q, k, v = shared_input(hidden, (self.q_proj, self.k_proj, self.v_proj))
        q = q.view(tokens, self.num_heads, self.head_dim)
        k = k.view(tokens, self.num_kv_heads, self.head_dim)
        v = v.view(tokens, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            q, _ = self.q_norm(q)
            k, _ = self.k_norm(k)
        q, k = self.pointwise.fn.apply_rotary(q, k, *batch.rotary)
        out = self.attn(q, k, v, batch)
        return self.o_proj(out.reshape(tokens, self.num_heads * self.head_dim))


class LlamaMLP(nn.Module):
    activation_class = SiluAndMul

    def __init__(self, config: PretrainedConfig, kernels: KernelSet) -> None:
        super().__init__()
        bias = getattr(config, "mlp_bias", False)
        self.gate_proj = ColumnParallelLinear(config.hidden_size, config.intermediate_size, bias, kernels.matmul)
        self.up_proj = ColumnParallelLinear(config.hidden_size, config.intermediate_size, bias, kernels.matmul)
        self.down_proj = RowParallelLinear(config.intermediate_size, config.hidden_size, bias, kernels.matmul)
        self.act_and_mul = self.activation_class(kernels.pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_and_mul(*shared_input(x, (self.gate_proj, self.up_proj))))


class LlamaDecoderLayer(nn.Module):
    attention_class = LlamaAttention
    mlp_class = LlamaMLP
    norm_class = RMSNorm

    def __init__(self, config: PretrainedConfig, kernels: KernelSet, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = self.attention_class(config, kernels, layer_idx)
        self.mlp = self.mlp_class(config, kernels)
        self.input_layernorm = self.norm_class(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)
        self.post_attention_layernorm = self.norm_class(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None,
                batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(hidden, batch)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class LlamaModel(nn.Module):
    def __init__(self, config: PretrainedConfig, kernels: KernelSet, layer_class: type[LlamaDecoderLayer]) -> None:
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(config.vocab_size, config.hidden_size)
        self.rotary = RotaryEmbedding(hf_reference(LlamaRotaryEmbedding, config), kernels.pointwise)
        self.layers = nn.ModuleList(layer_class(config, kernels, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, kernels.rmsnorm)
        self.kernel_names = kernels.names()
        self.fused = all(fusable(layer, self.kernel_names) for layer in self.layers)
        self.stack = FusedStack.of(self.layers) if self.fused else None

    def forward(self, input_ids: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        hidden, residual = self.embed_tokens(input_ids), None
        batch.rotary = self.rotary.cos_sin(batch.positions, hidden.dtype)
        library = library_linears(self.kernel_names, hidden, batch) if self.fused else None
        if library is not None:
            hidden, residual = fused_forward(self.stack, hidden, batch, library, prefill_by_sdpa(self.kernel_names))
        else:
            for layer in self.layers:
                hidden, residual = layer(hidden, residual, batch)
        return self.norm(hidden, residual)[0]


class LlamaForCausalLM(nn.Module):
    model_class = LlamaModel
    layer_class = LlamaDecoderLayer

    def __init__(self, config: PretrainedConfig, kernels: KernelSet, lm_head_fp32: bool = False) -> None:
        super().__init__()
        self.config = config
        self.model = self.model_class(config, kernels, self.layer_class)
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, kernels.matmul, lm_head_fp32)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        return self.model(input_ids, batch)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)
