from __future__ import annotations

from dataclasses import dataclass

import torch

from bi_bench.kernels import KernelVariant


@dataclass(frozen=True)
class SiluAndMul:
    pointwise: KernelVariant

    def __call__(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return self.pointwise.fn.silu(gate) * up


@dataclass(frozen=True)
class GeluTanhAndMul:
    """Gemma's MLP activation (Hugging Face's gelu_pytorch_tanh)."""

    pointwise: KernelVariant

    def __call__(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return self.pointwise.fn.gelu_tanh(gate) * up
