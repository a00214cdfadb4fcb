from __future__ import annotations

import torch

from bi_bench.kernels.cpu import pointwise


def silu_and_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return pointwise.silu(gate) * up


def gelu_tanh_and_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Gemma's MLP activation (Hugging Face's gelu_pytorch_tanh)."""
    return pointwise.gelu_tanh(gate) * up
