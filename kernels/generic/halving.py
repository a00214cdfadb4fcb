"""Sums over the last dim by pairwise halving: the same additions, in the same order, for every row.

A torch reduction picks its vectorization and thread split from the whole tensor's shape, so a row's sum can
depend on how many rows came with it. Halving uses elementwise adds only, which have no order to vary, in one
call per level instead of one call per fixed-size tile.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def halving_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim, keepdim; an odd width gets one zero column (x + 0 is exact)."""
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1))
        half = x.shape[-1] // 2
        x = x[..., :half] + x[..., half:]
    return x


def halving_mean(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean over the last dim, keepdim, accumulated in fp32 (at least) and returned in `dtype` or x's dtype."""
    accumulate = torch.promote_types(dtype or x.dtype, torch.float32)
    return (halving_sum(x.to(accumulate)) / x.shape[-1]).to(dtype or x.dtype)
