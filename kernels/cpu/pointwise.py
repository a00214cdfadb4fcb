"""Elementwise functions and prefix sums with the same bits on every CPU (kernels/cpu/csrc/pointwise.cpp, cumsum.cpp).

torch's SiLU, GELU-tanh, pow and log_softmax take other code paths per CPU build (ATEN_CPU_CAPABILITY=default
and avx2 already disagree in the last bit here), and its exp, log and cumsum promise no order, so CPU engines
call these in every mode, and batch_invariant_mode lends them to torch's CPU dispatch key.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.generic.pointwise import PointwiseOps
from bi_bench.kernels.registry import MODES, register


def exp(x: torch.Tensor) -> torch.Tensor:
    return extension().exp(x)


def log(x: torch.Tensor) -> torch.Tensor:
    return extension().log(x)


def silu(x: torch.Tensor) -> torch.Tensor:
    return extension().silu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return extension().gelu_tanh(x)


def cos(x: torch.Tensor) -> torch.Tensor:
    return extension().cos(x)


def sin(x: torch.Tensor) -> torch.Tensor:
    return extension().sin(x)


def pow_scalar(base: float, exponent: torch.Tensor) -> torch.Tensor:
    return extension().pow_scalar(float(base), exponent)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    return extension().apply_rotary(q, k, cos, sin)


def cumsum_last(x: torch.Tensor) -> torch.Tensor:
    return extension().cumsum(x)


CANONICAL = PointwiseOps(exp=exp, log=log, silu=silu, gelu_tanh=gelu_tanh, cos=cos, sin=sin, pow_scalar=pow_scalar,
                         apply_rotary=apply_rotary, cumsum_last=cumsum_last)

register("pointwise", "cpu_canonical", devices=("cpu",), batch_invariant=True,
         description="C++ functions with one polynomial and one rounding sequence each, prefix sums in order: the "
                     "same bits for any batch, thread count and x86-64 CPU", preferred_for=MODES)(CANONICAL)
