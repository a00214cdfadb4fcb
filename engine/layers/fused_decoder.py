"""A Llama decoder layer as one C++ call (kernels/cpu/csrc/decoder_layer.cpp) where every kernel the layer would
call on a batch has a C++ counterpart there: the same kernels on the same tensors, so the same bits, without the
Python and dispatch between them (about a seventh of a batch-1 decode step). Invariant mode's kernels always
have one; default mode's do for decode batches whose measured linear (kernels/cpu/measured.py) is ours or the
library's F.linear."""
from __future__ import annotations

import torch

from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.layers.activation import SiluAndMul
from bi_bench.engine.layers.layernorm import RMSNorm
from bi_bench.kernels.cpu.derived import derived_from
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.matmul import fastest, packed_weight
from bi_bench.kernels.cpu.phase_attention import split_by_phase
from bi_bench.kernels.cpu.row_attention import row_plan

FUSED_DTYPES = (torch.float32, torch.bfloat16)  # fp16 linears compute in fp32 (kernels/cpu/matmul.py)
# the linears llama_layer runs: whether each is the library's (at::linear) rather than our packed GEMM
LIBRARY_LINEAR = {"cpu_canonical": False, "torch": True}
# per op, the variants llama_layer has a counterpart for (cpu_fastest and cpu_phase_split: for some batches)
FUSED_KERNELS = {"matmul": (*LIBRARY_LINEAR, "cpu_fastest"), "rmsnorm": ("cpu_halving",),
                 "attention": ("cpu_row_program", "cpu_phase_split"), "pointwise": ("cpu_canonical",)}


def fusable(layer: torch.nn.Module, kernels: dict[str, str]) -> bool:
    """A plain Llama layer (no biases, no q/k norm, SiLU, Llama's RMSNorm) on one rank, with kernels llama_layer
    can stand in for (the weights' dtype is settled later, when they load: see FUSED_DTYPES)."""
    attn, mlp = layer.self_attn, layer.mlp
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    return (all(kernels.get(op) in names for op, names in FUSED_KERNELS.items())
            and not attn.qk_norm and type(mlp.act_and_mul) is SiluAndMul
            and type(layer.input_layernorm) is RMSNorm and type(layer.post_attention_layernorm) is RMSNorm
            and all(linear.bias is None and linear.group.size == 1 and linear.group.local_chunks == 1
                    for linear in linears))


def library_linears(kernels: dict[str, str], hidden: torch.Tensor, batch: ForwardBatch) -> bool | None:
    """For a fusable layer's batch: whether llama_layer runs it with the library's linears (True) or ours (False);
    None where the batch's kernels have no counterpart there (a prefill under phase split, oneDNN's linear)."""
    if kernels["attention"] == "cpu_phase_split" and not all(decode for *_, decode in split_by_phase(batch.attention)):
        return None
    matmul = fastest(hidden).name if kernels["matmul"] == "cpu_fastest" else kernels["matmul"]
    return LIBRARY_LINEAR.get(matmul)


def fused_forward(layer: torch.nn.Module, hidden: torch.Tensor, residual: torch.Tensor | None,
                  batch: ForwardBatch, library: bool) -> tuple[torch.Tensor, torch.Tensor]:
    paged = layer.self_attn.attn
    return extension().llama_layer(hidden, residual, *layer_constants(layer, library), *batch.rotary,
                                   paged.k_cache, paged.v_cache, batch.slot_mapping, *row_plan(batch.attention))


def layer_constants(layer: torch.nn.Module, library: bool) -> tuple:
    """The layer's norms, weights (packed for our GEMM, as they are for the library's) and shapes as llama_layer
    takes them, kept while no weight changes."""
    attn, mlp = layer.self_attn, layer.mlp
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)

    def weights(*modules: torch.nn.Module) -> list[torch.Tensor]:
        return [m.weight if library else packed_weight(m.weight, m.weight.dtype) for m in modules]

    return derived_from(layer, f"llama_layer library={library}", [m.weight for m in (*norms, *linears)], lambda: (
        norms[0].weight, norms[1].weight, norms[0].eps, weights(attn.q_proj, attn.k_proj, attn.v_proj),
        weights(attn.o_proj)[0], weights(mlp.gate_proj, mlp.up_proj), weights(mlp.down_proj)[0], attn.num_heads,
        attn.num_kv_heads, attn.head_dim, mlp.gate_proj.weight.shape[0], attn.attn.scale, attn.attn.window or 0,
        library))
