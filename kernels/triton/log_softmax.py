"""Triton log_softmax (fp32 result) over the vocabulary: one program per row."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from bi_bench.kernels.registry import register

BLOCK = 1024


@triton.jit
def _log_softmax_row_kernel(x_ptr, out_ptr, V, stride_x, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    # Per-lane online max and sum over the row, BLOCK columns at a time, lanes merged once at the end.
    lane_max = tl.full((BLOCK,), float("-inf"), tl.float32)
    lane_sum = tl.zeros((BLOCK,), dtype=tl.float32)
    for offset in tl.range(0, V, BLOCK):
        offs = offset + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < V, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(lane_max, x)
        # a lane that has seen only -inf keeps sum 0 instead of exp(-inf - -inf) = nan
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        lane_sum = lane_sum * tl.exp(lane_max - shift) + tl.exp(x - shift)
        lane_max = new_max
    row_max = tl.max(lane_max, axis=0)
    row_shift = tl.where(row_max == float("-inf"), 0.0, row_max)
    log_sum_exp = row_max + tl.log(tl.sum(lane_sum * tl.exp(lane_max - row_shift), axis=0))
    for offset in tl.range(0, V, BLOCK):
        offs = offset + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_x + offs, mask=offs < V, other=0.0).to(tl.float32)
        tl.store(out_ptr + row * V + offs, x - log_sum_exp, mask=offs < V)


@register("log_softmax", "triton_rowwise", devices=("cuda",), batch_invariant=True,
          description=f"one program per row, {BLOCK}-wide lanes with an fp32 online max and sum: "
                      "a row's reduction never depends on M", preferred_for=("invariant",))
def log_softmax_rowwise(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"log_softmax wants x [M, V]; got {tuple(x.shape)}")
    if x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    if x.numel():
        _log_softmax_row_kernel[(x.shape[0],)](x, out, x.shape[1], x.stride(0), BLOCK=BLOCK)
    return out
