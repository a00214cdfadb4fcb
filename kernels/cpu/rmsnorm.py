"""The canonical CPU RMSNorm (`kernels.generic.rmsnorm` states the arithmetic it shares with the torch variants)."""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.measured import MEASURED_HERE
from bi_bench.kernels.generic.halving import halving_mean
from bi_bench.kernels.generic.rmsnorm import normalize, residual_add
from bi_bench.kernels.registry import FLOATS, register


def halving_reference(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                      unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """cpu_halving's arithmetic in torch ops: what csrc/rmsnorm.cpp computes in one call, and what it runs
    where that call does not apply (float64, or a weight or residual in another dtype than x)."""
    x = residual_add(x, residual)
    return normalize(x, weight, halving_mean(x.float().pow(2)), eps, unit_offset), x


@register("rmsnorm", "cpu_halving", devices=("cpu",), batch_invariant=True,
          description="mean of squares by pairwise halving: elementwise adds in one fixed order per row, the "
                      "residual add and the scaling fused in one C++ call",
          preferred_for=("invariant", "default") if MEASURED_HERE else ("invariant",))
def rmsnorm_halving(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                    unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dtype not in FLOATS or weight.dtype != x.dtype or (residual is not None and residual.dtype != x.dtype):
        return halving_reference(x, weight, eps, residual, unit_offset)
    return extension().halving_rmsnorm(x, weight, residual, eps, unit_offset)
