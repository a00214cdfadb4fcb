"""A Llama decoder layer as one C++ call (kernels/cpu/csrc/decoder_layer.cpp) where every kernel the layer would
call is a canonical CPU one: the same kernels on the same tensors, so the same bits, without the Python and
dispatch between them (about a seventh of a batch-1 decode step)."""
from __future__ import annotations

import torch

from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.layers.activation import SiluAndMul
from bi_bench.engine.layers.layernorm import RMSNorm
from bi_bench.kernels.cpu.derived import derived_from
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.matmul import packed_weight
from bi_bench.kernels.cpu.row_attention import row_plan

FUSED_DTYPES = (torch.float32, torch.bfloat16)  # fp16 linears compute in fp32 (kernels/cpu/matmul.py)
FUSED_KERNELS = {"matmul": "cpu_canonical", "rmsnorm": "cpu_halving", "attention": "cpu_row_program",
                 "pointwise": "cpu_canonical"}


def fusable(layer: torch.nn.Module, kernels: dict[str, str]) -> bool:
    """A plain Llama layer (no biases, no q/k norm, SiLU, Llama's RMSNorm) on one rank, with the canonical kernels
    (the weights' dtype is settled later, when they load: see FUSED_DTYPES)."""
    attn, mlp = layer.self_attn, layer.mlp
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    return (all(kernels.get(op) == name for op, name in FUSED_KERNELS.items())
            and not attn.qk_norm and type(mlp.act_and_mul) is SiluAndMul
            and type(layer.input_layernorm) is RMSNorm and type(layer.post_attention_layernorm) is RMSNorm
            and all(linear.bias is None and linear.group.size == 1 and linear.group.local_chunks == 1
                    for linear in linears))


def fused_forward(layer: torch.nn.Module, hidden: torch.Tensor, residual: torch.Tensor | None,
                  batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor]:
    paged = layer.self_attn.attn
    return extension().llama_layer(hidden, residual, *layer_constants(layer), *batch.rotary, paged.k_cache,
                                   paged.v_cache, batch.slot_mapping, *row_plan(batch.attention))


def layer_constants(layer: torch.nn.Module) -> tuple:
    """The layer's norms, packed weights and shapes as llama_layer takes them, kept while no weight changes."""
    attn, mlp = layer.self_attn, layer.mlp
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    return derived_from(layer, [module.weight for module in (*norms, *linears)], lambda: (
        norms[0].weight, norms[1].weight, norms[0].eps, packed(attn.q_proj, attn.k_proj, attn.v_proj),
        packed(attn.o_proj)[0], packed(mlp.gate_proj, mlp.up_proj), packed(mlp.down_proj)[0], attn.num_heads,
        attn.num_kv_heads, attn.head_dim, mlp.gate_proj.weight.shape[0], attn.attn.scale, attn.attn.window or 0))


def packed(*linears: torch.nn.Module) -> list[torch.Tensor]:
    return [packed_weight(linear.weight, linear.weight.dtype) for linear in linears]
