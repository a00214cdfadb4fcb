"""ATen out= calls: they bypass the aten overrides of batch_invariant_mode, so kernels can run inside it."""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu.derived import fp32, needs_upcast


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if needs_upcast(a):
        return mm(a.float(), fp32(b)).to(a.dtype)
    out = a.new_empty(a.shape[0], b.shape[1])
    return torch.ops.aten.mm.out(a, b, out=out)


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = a.new_empty(a.shape[0], a.shape[1], b.shape[2])
    return torch.ops.aten.bmm.out(a, b, out=out)


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    """fp32 log_softmax over the last dim."""
    x = x.float()
    return torch.ops.aten._log_softmax.out(x, -1, False, out=torch.empty_like(x))


def mean_last(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean over the last dim, keepdim."""
    out = x.new_empty(*x.shape[:-1], 1, dtype=dtype or x.dtype)
    return torch.ops.aten.mean.out(x, [-1], True, dtype=dtype, out=out)
