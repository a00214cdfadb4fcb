"""Triton mean over the last dim (fp32 result): one program per row, for aten mean.dim in batch_invariant_mode."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


@triton.jit
def _mean_row_kernel(x_ptr, out_ptr, N, stride_x, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    # One fp32 lane per BLOCK offset, lanes summed once at the end: rmsnorm_rowwise's order for its squares.
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for offset in tl.range(0, N, BLOCK):
        offs = offset + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + row * stride_x + offs, mask=offs < N, other=0.0).to(tl.float32)
    tl.store(out_ptr + row, tl.sum(acc, axis=0) / N)


def mean_rowwise(x: torch.Tensor) -> torch.Tensor:
    """fp32 mean of each row of x [M, N]: a row's reduction never depends on M."""
    if x.dim() != 2:
        raise ValueError(f"mean wants x [M, N]; got {tuple(x.shape)}")
    if x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    if x.shape[0]:
        _mean_row_kernel[(x.shape[0],)](x, out, x.shape[1], x.stride(0), BLOCK=BLOCK)
    return out
