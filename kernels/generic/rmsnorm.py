"""RMSNorm variants in torch ops, with Hugging Face's arithmetic and an optional fused residual add.

`unit_offset=False` is LlamaRMSNorm's: weight * (x * rstd) rounded to x's dtype first. `unit_offset=True` is
Gemma's: (x * rstd) * (1 + weight) in fp32, rounded once.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.generic import primitives
from bi_bench.kernels.generic.tiling import split_count_from_rows
from bi_bench.kernels.registry import register


def residual_add(x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return x if residual is None else x + residual


def normalize(x: torch.Tensor, weight: torch.Tensor, mean_square: torch.Tensor, eps: float,
               unit_offset: bool) -> torch.Tensor:
    h = x.float() * torch.rsqrt(mean_square + eps)
    if unit_offset:
        return (h * (1.0 + weight.float())).to(x.dtype)
    return weight * h.to(x.dtype)


@register("rmsnorm", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="torch ops on the whole batch: the reduction may be split across threads by shape",
          preferred_for=("default",), fallback=True)
def rmsnorm_torch(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                  unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = residual_add(x, residual)
    return normalize(x, weight, primitives.mean_last(x.float().pow(2)), eps, unit_offset), x


@register("rmsnorm", "split", devices=("cpu", "cuda"), batch_invariant=False,
          description="sum of squares split into partials whose count follows M (negative control)")
def rmsnorm_split(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                  unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = residual_add(x, residual)
    chunks = x.float().chunk(split_count_from_rows(x.shape[0]), dim=-1)
    mean_square = torch.stack([c.pow(2).sum(-1, keepdim=True) for c in chunks]).sum(0) / x.shape[-1]
    return normalize(x, weight, mean_square, eps, unit_offset), x
