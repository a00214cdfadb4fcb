"""The CUDA side of batch_invariant_mode(): aten mm/addmm/bmm/_log_softmax/mean.dim through the Triton kernels.

Each row's reduction runs in one fixed order whatever the other rows: the engine's invariant-mode kernels.
Dtypes those kernels do not claim (float64, say) go to ATen's own out= kernels, which the overrides do not
reach.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.registry import FLOATS
from bi_bench.kernels.triton.log_softmax import log_softmax_rowwise
from bi_bench.kernels.triton.matmul import matmul_persistent
from bi_bench.kernels.triton.mean import mean_rowwise


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dtype not in FLOATS:
        return torch.ops.aten.mm.out(a, b, out=a.new_empty(a.shape[0], b.shape[1]))
    return matmul_persistent(a, b.t())


def addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, beta: float = 1,
          alpha: float = 1) -> torch.Tensor:
    if beta == 1 and alpha == 1 and bias.shape == (b.shape[1],) and a.dtype in FLOATS:
        # what nn.Linear asks for: the bias added in the kernel's fp32 accumulator, as the engine's Linear does
        return matmul_persistent(a, b.t(), bias)
    product = mm(a, b)
    return (product if alpha == 1 else alpha * product) + (bias if beta == 1 else beta * bias)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = a.new_empty(a.shape[0], a.shape[1], b.shape[2])
    for index in range(a.shape[0]):
        out[index] = mm(a[index], b[index])
    return out


def _rows_of(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x with `dim` moved last, flattened to [rows, x.shape[dim]]."""
    moved = x.movedim(dim, -1)
    return moved.reshape(-1, moved.shape[-1])


def log_softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    if x.dtype not in FLOATS:
        return torch.ops.aten._log_softmax.out(x, dim, half_to_float, out=torch.empty_like(x))
    moved_shape = x.movedim(dim, -1).shape
    out = log_softmax_rowwise(_rows_of(x, dim)).view(moved_shape).movedim(-1, dim)
    return out if half_to_float else out.to(x.dtype)


def mean_dim(x: torch.Tensor, dim: list[int] | None, keepdim: bool = False, *,
             dtype: torch.dtype | None = None) -> torch.Tensor:
    result_dtype = dtype or x.dtype
    if dim is None or len(dim) != 1 or x.dim() == 0 or x.dtype not in FLOATS or result_dtype not in FLOATS:
        out = x.new_empty((), dtype=result_dtype)
        return torch.ops.aten.mean.out(x, dim, keepdim, dtype=dtype, out=out)
    axis = dim[0] % x.dim()
    others = x.shape[:axis] + x.shape[axis + 1:]
    out = mean_rowwise(_rows_of(x, axis)).to(result_dtype).view(*others, 1).movedim(-1, axis)
    return out if keepdim else out.squeeze(axis)


OVERRIDES = {"mm": mm, "addmm": addmm, "bmm": bmm, "_log_softmax": log_softmax, "mean.dim": mean_dim}
