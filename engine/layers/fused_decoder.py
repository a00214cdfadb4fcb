"""A stack of Llama decoder layers as one C++ call (kernels/cpu/csrc/decoder_layer.cpp) where every kernel a layer
would call on a batch has a C++ counterpart there: the same kernels on the same tensors, so the same bits, without
the Python and dispatch between them (about a seventh of a batch-1 decode step). Invariant mode's kernels always
have one; default mode's do for batches whose measured linear (kernels/cpu/measured.py) is ours or the library's
F.linear, prefills included (phase split: kernels/cpu/csrc/phase_attention.cpp)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.layers.activation import SiluAndMul
from bi_bench.engine.layers.layernorm import RMSNorm
from bi_bench.kernels.cpu.derived import derived_from, needs_upcast
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.matmul import fastest, packed_weight
from bi_bench.kernels.cpu.phase_attention import split_by_phase
from bi_bench.kernels.cpu.row_attention import row_plan

FUSED_DTYPES = (torch.float32, torch.bfloat16)  # fp16 linears compute in fp32 (kernels/cpu/matmul.py)
# the linears llama_stack runs: whether each is the library's (at::linear) rather than our packed GEMM
LIBRARY_LINEAR = {"cpu_canonical": False, "torch": True}
# per op, the variants llama_stack has a counterpart for (cpu_fastest: for some batches)
FUSED_KERNELS = {"matmul": (*LIBRARY_LINEAR, "cpu_fastest"), "rmsnorm": ("cpu_halving",),
                 "attention": ("cpu_row_program", "cpu_phase_split"), "pointwise": ("cpu_canonical",)}


def fusable(layer: torch.nn.Module, kernels: dict[str, str]) -> bool:
    """A plain Llama layer (no biases, no q/k norm, SiLU, Llama's RMSNorm) on one rank, with kernels llama_stack
    can stand in for (the weights' dtype is settled later, when they load: see FUSED_DTYPES)."""
    attn, mlp = layer.self_attn, layer.mlp
    linears = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    return (all(kernels.get(op) in names for op, names in FUSED_KERNELS.items())
            and not attn.qk_norm and type(mlp.act_and_mul) is SiluAndMul
            and type(layer.input_layernorm) is RMSNorm and type(layer.post_attention_layernorm) is RMSNorm
            and all(linear.bias is None and linear.group.size == 1 and linear.group.local_chunks == 1
                    for linear in linears))


def library_linears(kernels: dict[str, str], hidden: torch.Tensor, batch: ForwardBatch) -> bool | None:
    """For a fusable stack's batch: whether llama_stack runs it with the library's linears (True) or ours (False);
    None where the batch has no counterpart there (on another device or dtype, recording gradients, a prefill under
    phase split in a half type this CPU upcasts, oneDNN's linear)."""
    if not hidden.is_cpu or hidden.dtype not in FUSED_DTYPES or torch.is_grad_enabled():
        return None
    if prefill_by_sdpa(kernels) and needs_upcast(hidden) and not all(
            decode for *_, decode in split_by_phase(batch.attention)):
        return None
    matmul = fastest(hidden).name if kernels["matmul"] == "cpu_fastest" else kernels["matmul"]
    return LIBRARY_LINEAR.get(matmul)


@dataclass
class FusedStack:
    """Layers llama_stack runs, with what every step reads of them listed once: their weights (loading copies into
    them, so they stay the same tensors) and the attention modules whose caches they write."""

    layers: Sequence[torch.nn.Module]
    weights: list[torch.Tensor]
    attention: list[torch.nn.Module]

    @classmethod
    def of(cls, layers: Sequence[torch.nn.Module]) -> FusedStack:
        return cls(layers, [p for layer in layers for p in layer_weights(layer)],
                   [layer.self_attn.attn for layer in layers])


def prefill_by_sdpa(kernels: dict[str, str]) -> bool:
    """Whether the stack's attention is phase split: prefill sequences by SDPA (kernels/cpu/phase_attention.py)."""
    return kernels["attention"] == "cpu_phase_split"


def fused_forward(stack: FusedStack, hidden: torch.Tensor, batch: ForwardBatch, library: bool,
                  phase_split: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The layers' (hidden, residual) from one C++ call."""
    return extension().llama_stack(hidden, stack_constants(stack, library), *batch.rotary,
                                   [a.k_cache for a in stack.attention], [a.v_cache for a in stack.attention],
                                   batch.slot_mapping, *row_plan(batch.attention), phase_split)


def stack_constants(stack: FusedStack, library: bool) -> list:
    """Each layer's norms, weights (packed for our GEMM, as they are for the library's) and shapes as llama_stack
    takes them, kept while no weight changes."""
    return derived_from(stack, f"llama_stack library={library}", stack.weights,
                        lambda: [layer_constants(layer, library) for layer in stack.layers])


def layer_weights(layer: torch.nn.Module) -> list[torch.Tensor]:
    attn, mlp = layer.self_attn, layer.mlp
    return [m.weight for m in (layer.input_layernorm, layer.post_attention_layernorm, attn.q_proj, attn.k_proj,
                               attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)]


def layer_constants(layer: torch.nn.Module, library: bool) -> object:
    attn, mlp = layer.self_attn, layer.mlp
    norms = (layer.input_layernorm, layer.post_attention_layernorm)

    def weights(*modules: torch.nn.Module) -> list[torch.Tensor]:
        return [m.weight if library else packed_weight(m.weight, m.weight.dtype) for m in modules]

    return extension().LlamaLayer(
        norms[0].weight, norms[1].weight, norms[0].eps, weights(attn.q_proj, attn.k_proj, attn.v_proj),
        weights(attn.o_proj)[0], weights(mlp.gate_proj, mlp.up_proj), weights(mlp.down_proj)[0], attn.num_heads,
        attn.num_kv_heads, attn.head_dim, mlp.gate_proj.weight.shape[0], attn.attn.scale, attn.attn.window or 0,
        library)
