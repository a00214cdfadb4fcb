"""The pointwise op: the elementwise functions and prefix sums an engine computes outside its GEMMs and reductions.

One variant holds them all, so a model's activations, rotary tables and sampler take one named path per device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from bi_bench.kernels.registry import MODES, register

Unary = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PointwiseOps:
    exp: Unary
    log: Unary
    silu: Unary
    gelu_tanh: Unary
    cos: Unary
    sin: Unary
    pow_scalar: Callable[[float, torch.Tensor], torch.Tensor]  # base ** exponent
    # Hugging Face's q * cos + rotate_half(q) * sin, and k's, with its roundings
    apply_rotary: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    cumsum_last: Unary  # fp32 inclusive prefix sums over the last dim of a 2-D tensor


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


TORCH = PointwiseOps(
    exp=torch.exp, log=torch.log, silu=F.silu, gelu_tanh=lambda x: F.gelu(x, approximate="tanh"), cos=torch.cos,
    sin=torch.sin, pow_scalar=torch.pow, apply_rotary=apply_rotary, cumsum_last=lambda x: x.float().cumsum(dim=-1))

# Each element alone (each row, for the prefix sums), so no batch changes a bit; on CPU the bits still follow
# torch's build (ATEN_CPU_CAPABILITY), which is why CPU engines take cpu_canonical in every mode.
register("pointwise", "torch", devices=("cpu", "cuda"), batch_invariant=True,
         description="torch's own elementwise functions and cumsum: elementwise, but on CPU their code path (and "
                     "last bit) follows the build's ISA", preferred_for=MODES, preferred_on=("cuda",))(TORCH)
