"""batch_invariant_mode(): routes any torch model's reductions through the invariant CPU kernels.

Overrides aten mm/addmm/bmm/_log_softmax/mean.dim on CPU for the duration of the context, and registers
`attn_implementation="bi_bench"` with transformers, so an unmodified Hugging Face model computes with the
engine's arithmetic. Autograd keeps working: the overrides sit below it, so backward matmuls are routed too.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.cpu import primitives
from bi_bench.kernels.cpu.halving import halving_mean
from bi_bench.kernels.cpu.row_attention import attention_row_program
from bi_bench.kernels.cpu.matmul import MIN_ROWS, min_rows_mm
from bi_bench.kernels.cpu.tiling import pad_rows, row_tiled
from bi_bench.kernels.cpu.log_softmax import TILE_ROWS as LOG_SOFTMAX_TILE_ROWS

ATTENTION_NAME = "bi_bench"
ATTENTION_BLOCK = 16
_active: list[torch.library.Library] = []


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1, alpha: float = 1) -> torch.Tensor:
    # The engine's Linear adds its bias after the matmul; addmm's fused beta*bias would round differently.
    product = min_rows_mm(a, b)
    return (product if alpha == 1 else alpha * product) + (bias if beta == 1 else beta * bias)


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    rows = a.shape[1]
    if rows >= MIN_ROWS:
        return primitives.bmm(a, b)
    return primitives.bmm(pad_rows(a.transpose(0, 1), MIN_ROWS).transpose(0, 1).contiguous(), b)[:, :rows]


def _last_dim_rows(fn, x: torch.Tensor, dim: int, rows: int) -> torch.Tensor:
    """fn over `dim`, applied to fixed-size tiles of the other elements."""
    moved = x.movedim(dim, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    out = row_tiled(fn, flat, rows)
    return out.reshape(*moved.shape[:-1], out.shape[-1]).movedim(-1, dim)


def _log_softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    out = _last_dim_rows(primitives.log_softmax, x, dim, LOG_SOFTMAX_TILE_ROWS)
    return out if half_to_float or x.dtype == torch.float32 else out.to(x.dtype)


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
                      **kwargs) -> tuple[torch.Tensor, None]:
    """Causal attention over unpadded sequences with the engine's invariant kernel (one program per row).

    query [B, H, S, D]; key/value [B, Hkv, S, D]. Each sequence's keys become a block table of
    ATTENTION_BLOCK-token blocks, so the arithmetic is the engine's own, row for row.
    """
    if dropout:
        raise ValueError("bi_bench attention does not do dropout")
    batch, heads, length, head_dim = query.shape
    _check_causal(attention_mask, length)
    blocks = -(-length // ATTENTION_BLOCK)

    def paged(t: torch.Tensor) -> torch.Tensor:
        t = t.transpose(1, 2)  # [B, S, Hkv, D]
        t = torch.nn.functional.pad(t, (0, 0, 0, 0, 0, blocks * ATTENTION_BLOCK - length))
        return t.reshape(batch * blocks, ATTENTION_BLOCK, *t.shape[2:])

    tables = torch.arange(batch * blocks, dtype=torch.int32).view(batch, blocks)
    meta = AttentionMetadata([b * length for b in range(batch + 1)], [length] * batch, tables, ATTENTION_BLOCK)
    q = query.transpose(1, 2).reshape(batch * length, heads, head_dim)
    out = attention_row_program(q, paged(key), paged(value), meta, scaling or head_dim ** -0.5)
    return out.view(batch, length, heads, head_dim), None


def _check_causal(attention_mask: torch.Tensor | None, length: int) -> None:
    if attention_mask is None:
        return
    causal = torch.ones(length, length, dtype=torch.bool).tril()
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
_OVERRIDES = {"mm": min_rows_mm, "addmm": _addmm, "bmm": _bmm, "_log_softmax": _log_softmax, "mean.dim": _mean_dim}


@contextlib.contextmanager
def batch_invariant_mode() -> Iterator[None]:
    if _active:  # already on: nested use is a no-op
        yield
        return
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.library")
        for op, fn in _OVERRIDES.items():
            library.impl(op, fn, "CPU")
    _active.append(library)
    try:
        yield
    finally:
        _active.pop()._destroy()
