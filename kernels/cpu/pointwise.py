"""Elementwise functions and prefix sums with the same bits on every CPU (kernels/cpu/csrc/pointwise.cpp, cumsum.cpp).

torch's SiLU, GELU-tanh, pow and log_softmax take other code paths per CPU build (ATEN_CPU_CAPABILITY=default
and avx2 already disagree in the last bit here), and its exp, log and cumsum promise no order, so the
invariant path on CPU calls these instead. Tensors
on other devices keep torch's own kernels: there invariance is claimed per device type.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bi_bench.kernels.cpu.extension import extension


def exp(x: torch.Tensor) -> torch.Tensor:
    return extension().exp(x) if x.is_cpu else x.exp()


def log(x: torch.Tensor) -> torch.Tensor:
    return extension().log(x) if x.is_cpu else x.log()


def silu(x: torch.Tensor) -> torch.Tensor:
    return extension().silu(x) if x.is_cpu else F.silu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return extension().gelu_tanh(x) if x.is_cpu else F.gelu(x, approximate="tanh")


def cos(x: torch.Tensor) -> torch.Tensor:
    return extension().cos(x) if x.is_cpu else x.cos()


def sin(x: torch.Tensor) -> torch.Tensor:
    return extension().sin(x) if x.is_cpu else x.sin()


def pow_scalar(base: float, exponent: torch.Tensor) -> torch.Tensor:
    """base ** exponent."""
    return extension().pow_scalar(float(base), exponent) if exponent.is_cpu else torch.pow(base, exponent)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's q * cos + rotate_half(q) * sin (and k's) in one call, with its roundings (CPU tensors)."""
    return extension().apply_rotary(q, k, cos, sin)


def cumsum_last(x: torch.Tensor) -> torch.Tensor:
    """fp32 inclusive prefix sums over the last dim of a 2-D tensor."""
    return extension().cumsum(x) if x.is_cpu else x.float().cumsum(dim=-1)
