from __future__ import annotations

import torch
from torch import nn

from bi_bench.kernels import KernelVariant


class RMSNorm(nn.Module):
    """RMSNorm with an optional fused residual add: returns (normed, residual-sum)."""

    unit_offset = False

    def __init__(self, size: int, eps: float, rmsnorm: KernelVariant) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)
        self.eps = eps
        self.rmsnorm = rmsnorm

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        out, summed = self.rmsnorm.fn(x.reshape(-1, shape[-1]), self.weight, self.eps,
                                      None if residual is None else residual.reshape(-1, shape[-1]),
                                      unit_offset=self.unit_offset)
        return out.view(shape), summed.view(shape)


class GemmaRMSNorm(RMSNorm):
    """Gemma's: scales by (1 + weight), in fp32, and rounds once."""

    unit_offset = True
