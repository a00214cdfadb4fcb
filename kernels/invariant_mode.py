"""batch_invariant_mode(): routes any torch model's reductions through the engine's invariant kernels.

Overrides the aten ops named in `_OVERRIDES` (the reductions: mm, addmm, bmm, _log_softmax, mean.dim; and the
pointwise functions, whose torch code paths differ per CPU build) for the CPU dispatch key, and the Triton kernels'
ops for the CUDA key, for the duration of the context, and registers `attn_implementation="bi_bench"` with
transformers, so an unmodified Hugging Face model computes with the engine's arithmetic. Autograd keeps
working because the overrides sit below it: the AutogradCPU/AutogradCUDA kernels record the graph and call
down into ours, and the backward formulas' own matmuls are routed too. A kernel of ours at an Autograd key
would have to reimplement every derivative instead.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterator

import torch

from bi_bench.kernels import registry
from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.cpu import pointwise
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.matmul import canonical_mm
from bi_bench.kernels.cpu.row_attention import attention_row_program
from bi_bench.kernels.generic.attention import in_window
from bi_bench.kernels.generic.halving import halving_mean

ATTENTION_NAME = "bi_bench"
ATTENTION_BLOCK = 16
_active: list[torch.library.Library] = []


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return canonical_mm(a, b.t())


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1, alpha: float = 1) -> torch.Tensor:
    # The engine's Linear adds its bias after the matmul; addmm's fused beta*bias would round differently.
    product = _mm(a, b)
    return (product if alpha == 1 else alpha * product) + (bias if beta == 1 else beta * bias)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.stack([_mm(x, y) for x, y in zip(a, b)]) if len(a) else a.new_empty(0, a.shape[1], b.shape[2])


def _log_softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    moved = x.movedim(dim, -1)
    out = extension().log_softmax(moved.reshape(-1, moved.shape[-1])).view(moved.shape).movedim(-1, dim)
    return out if half_to_float or x.dtype == torch.float32 else out.to(x.dtype)


CANONICAL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _elementwise(canonical: Callable[[torch.Tensor], torch.Tensor], torch_out: Callable) -> Callable:
    """The canonical kernel for fp32/bf16/fp16 tensors; torch's own (its out= call) for float64 and the rest."""
    def run(x: torch.Tensor) -> torch.Tensor:
        if x.dtype in CANONICAL_DTYPES:
            return canonical(x)
        out = torch.empty(x.shape, dtype=x.dtype if x.is_floating_point() else torch.get_default_dtype())
        return torch_out(x, out=out)

    return run


def _pow_scalar(base: float, exponent: torch.Tensor) -> torch.Tensor:
    if exponent.dtype == torch.float32:
        return pointwise.pow_scalar(base, exponent)
    return torch.ops.aten.pow.Scalar_out(base, exponent, out=torch.empty_like(exponent))


def _gelu(x: torch.Tensor, *, approximate: str = "none") -> torch.Tensor:
    if approximate == "tanh":
        return pointwise.gelu_tanh(x)
    # erf GELU has no canonical kernel: torch's own (the out= call is not overridden)
    return torch.ops.aten.gelu.out(x, approximate=approximate, out=torch.empty_like(x))


def _mean_dim(x: torch.Tensor, dim: list[int] | None, keepdim: bool = False, *,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    if dim is None or len(dim) != 1:
        out = x.new_empty(())
        return torch.ops.aten.mean.out(x, dim, keepdim, dtype=dtype, out=out)
    axis = dim[0] % x.dim()
    out = halving_mean(x.movedim(axis, -1), dtype).movedim(-1, axis)
    return out if keepdim else out.squeeze(axis)


def attention_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      sliding_window: int | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """Causal attention over unpadded sequences with the engine's invariant kernel (one program per row):
    the C++ row program on CPU, the Triton fixed-split kernel on CUDA.

    query [B, H, S, D]; key/value [B, Hkv, S, D]. Each sequence's keys become a block table of
    ATTENTION_BLOCK-token blocks, so the arithmetic is the engine's own, row for row. A sliding-window layer's
    `sliding_window` (passed by the modelling code) limits each row to its last that many keys, as in the engine.
    """
    if dropout:
        raise ValueError("bi_bench attention does not do dropout")
    batch, heads, length, head_dim = query.shape
    _check_causal(attention_mask, length, sliding_window)
    scale = scaling or head_dim ** -0.5
    if query.is_cuda:
        return _TritonAttention.apply(query, key, value, scale, sliding_window), None
    out = attention_row_program(*_as_block_cache(query, key, value), scale, sliding_window)
    return out.view(batch, length, heads, head_dim), None


def _as_block_cache(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, AttentionMetadata]:
    """The batch as the engine lays it out: packed queries [B*S, H, D], and each sequence's keys and values in
    blocks of ATTENTION_BLOCK tokens of its own."""
    batch, heads, length, head_dim = query.shape
    blocks = -(-length // ATTENTION_BLOCK)

    def paged(t: torch.Tensor) -> torch.Tensor:
        t = t.transpose(1, 2)  # [B, S, Hkv, D]
        t = torch.nn.functional.pad(t, (0, 0, 0, 0, 0, blocks * ATTENTION_BLOCK - length))
        return t.reshape(batch * blocks, ATTENTION_BLOCK, *t.shape[2:])

    tables = torch.arange(batch * blocks, dtype=torch.int32, device=query.device).view(batch, blocks)
    meta = AttentionMetadata([b * length for b in range(batch + 1)], [length] * batch, tables, ATTENTION_BLOCK)
    return query.transpose(1, 2).reshape(batch * length, heads, head_dim), paged(key), paged(value), meta


class _TritonAttention(torch.autograd.Function):
    """Forward: the Triton fixed-split kernel, [B, S, H, D]. Backward differentiates torch's SDPA with the same
    mask: gradients need not be bitwise."""

    @staticmethod
    def forward(ctx, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float,
                window: int | None) -> torch.Tensor:
        from bi_bench.kernels.triton.attention import attention_fixed_split

        ctx.save_for_backward(query, key, value)
        ctx.scale, ctx.window = scale, window
        batch, heads, length, head_dim = query.shape
        out = attention_fixed_split(*_as_block_cache(query, key, value), scale, window)
        return out.view(batch, length, heads, head_dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        length = inputs[0].shape[2]
        positions = torch.arange(length, device=grad.device)
        with torch.enable_grad():
            out = torch.nn.functional.scaled_dot_product_attention(
                *inputs, attn_mask=in_window(positions[None, :], positions[:, None], ctx.window), scale=ctx.scale,
                enable_gqa=True).transpose(1, 2)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None)


def _check_causal(attention_mask: torch.Tensor | None, length: int, window: int | None) -> None:
    if attention_mask is None:
        return
    positions = torch.arange(length, device=attention_mask.device)
    causal = in_window(positions[None, :], positions[:, None], window)
    visible = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    if not torch.equal(visible[..., -length:, -length:].expand(*visible.shape[:-2], length, length),
                       causal.expand(*visible.shape[:-2], length, length)):
        raise ValueError("bi_bench attention handles causal attention over unpadded sequences only")


def register_attention() -> None:
    """Makes `attn_implementation="bi_bench"` loadable; done on import of this module."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


register_attention()
# Every op of a Llama / Qwen / Gemma forward whose CPU bits could depend on the batch, the thread count or the CPU
# build; the rest (add, mul, div, sqrt, rsqrt = 1 / sqrt in every torch build) are exact IEEE operations.
_OVERRIDES = {"mm": _mm, "addmm": _addmm, "bmm": _bmm, "_log_softmax": _log_softmax, "mean.dim": _mean_dim,
              "silu": _elementwise(pointwise.silu, torch.ops.aten.silu.out), "gelu": _gelu,
              "cos": _elementwise(pointwise.cos, torch.ops.aten.cos.out),
              "sin": _elementwise(pointwise.sin, torch.ops.aten.sin.out),
              "exp": _elementwise(pointwise.exp, torch.ops.aten.exp.out),
              "log": _elementwise(pointwise.log, torch.ops.aten.log.out), "pow.Scalar": _pow_scalar}


def _cuda_overrides() -> dict[str, Callable]:
    """The Triton kernels for the CUDA key; registered on any machine (the CUDA key exists without a GPU), none
    without triton. Imported on first use: importing triton costs a second."""
    registry.variants()  # every built-in variant registered in the registry's order before the Triton modules load
    try:
        from bi_bench.kernels.triton.aten_overrides import OVERRIDES
    except ImportError:
        return {}
    return OVERRIDES


@contextlib.contextmanager
def batch_invariant_mode() -> Iterator[None]:
    if _active:  # already on: nested use is a no-op
        yield
        return
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.library")
        for key, overrides in (("CPU", _OVERRIDES), ("CUDA", _cuda_overrides())):
            for op, fn in overrides.items():
                library.impl(op, fn, key)
    _active.append(library)
    try:
        yield
    finally:
        _active.pop()._destroy()
