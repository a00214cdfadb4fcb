"""Linear (x @ weight.T + bias) variants in torch ops."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bi_bench.kernels.generic.tiling import split_count_from_rows
from bi_bench.kernels.registry import register


def add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out + bias


@register("matmul", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="F.linear: the backend picks its kernel (and its K order) from the shape",
          preferred_for=("default",), fallback=True)
def linear_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x, weight, bias)


@register("matmul", "split_k", devices=("cpu", "cuda"), batch_invariant=False,
          description="split-K whose split count follows M, like vendor heuristics (negative control)")
def linear_split_k(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    splits = split_count_from_rows(x.shape[0])
    partials = [torch.mm(xs, ws.t()) for xs, ws in zip(x.chunk(splits, dim=1), weight.chunk(splits, dim=1))]
    return add_bias(torch.stack(partials).sum(0), bias)
