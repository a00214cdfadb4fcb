"""CPU RMSNorm variants with Hugging Face's arithmetic and an optional fused residual add.

`unit_offset=False` is LlamaRMSNorm's: weight * (x * rstd) rounded to x's dtype first. `unit_offset=True` is
Gemma's: (x * rstd) * (1 + weight) in fp32, rounded once.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu import primitives
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.halving import halving_mean
from bi_bench.kernels.cpu.tiling import split_count_from_rows
from bi_bench.kernels.registry import FLOATS, register


def _residual_add(x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
    return x if residual is None else x + residual


def _normalize(x: torch.Tensor, weight: torch.Tensor, mean_square: torch.Tensor, eps: float,
               unit_offset: bool) -> torch.Tensor:
    h = x.float() * torch.rsqrt(mean_square + eps)
    if unit_offset:
        return (h * (1.0 + weight.float())).to(x.dtype)
    return weight * h.to(x.dtype)


@register("rmsnorm", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="torch ops on the whole batch: the reduction may be split across threads by shape",
          preferred_for=("default",))
def rmsnorm_torch(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                  unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = _residual_add(x, residual)
    return _normalize(x, weight, primitives.mean_last(x.float().pow(2)), eps, unit_offset), x


def halving_reference(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                      unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """cpu_halving's arithmetic in torch ops: what csrc/rmsnorm.cpp computes in one call, and what it runs
    where that call does not apply (float64, or a weight or residual in another dtype than x)."""
    x = _residual_add(x, residual)
    return _normalize(x, weight, halving_mean(x.float().pow(2)), eps, unit_offset), x


@register("rmsnorm", "cpu_halving", devices=("cpu",), batch_invariant=True,
          description="mean of squares by pairwise halving: elementwise adds in one fixed order per row, the "
                      "residual add and the scaling fused in one C++ call",
          preferred_for=("invariant",))
def rmsnorm_halving(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                    unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dtype not in FLOATS or weight.dtype != x.dtype or (residual is not None and residual.dtype != x.dtype):
        return halving_reference(x, weight, eps, residual, unit_offset)
    return extension().halving_rmsnorm(x, weight, residual, eps, unit_offset)


@register("rmsnorm", "split", devices=("cpu", "cuda"), batch_invariant=False,
          description="sum of squares split into partials whose count follows M (negative control)")
def rmsnorm_split(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                  unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = _residual_add(x, residual)
    chunks = x.float().chunk(split_count_from_rows(x.shape[0]), dim=-1)
    mean_square = torch.stack([c.pow(2).sum(-1, keepdim=True) for c in chunks]).sum(0) / x.shape[-1]
    return _normalize(x, weight, mean_square, eps, unit_offset), x
