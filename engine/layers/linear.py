from __future__ import annotations

import torch
from torch import nn

from bi_bench.kernels import KernelVariant


class Linear(nn.Module):
    """y = x @ weight.T + bias through the engine's matmul variant."""

    def __init__(self, in_features: int, out_features: int, bias: bool, matmul: KernelVariant) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False) if bias else None
        self.matmul = matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.matmul.fn(x, self.weight, self.bias)
