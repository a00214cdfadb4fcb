"""Sharded parameters: each rank holds a slice of the full tensor, cut out of the full one by its weight_loader."""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from bi_bench.engine.distributed.parallel_state import TensorParallelGroup


def sharded_parameter(full_shape: tuple[int, ...], dim: int, group: TensorParallelGroup) -> nn.Parameter:
    """A parameter holding slice `group.rank` of `group.size` along `dim` of a `full_shape` tensor."""
    shape = list(full_shape)
    shape[dim] //= group.size
    param = nn.Parameter(torch.empty(shape), requires_grad=False)
    param.full_shape = tuple(full_shape)
    param.weight_loader = partial(_load_slice, dim=dim, rank=group.rank, size=group.size)
    return param


def full_shape(param: nn.Parameter) -> tuple[int, ...]:
    return getattr(param, "full_shape", tuple(param.shape))


def load_full(param: nn.Parameter, full: torch.Tensor) -> None:
    """Loads `param` from the full (Hugging Face) tensor through its weight_loader."""
    if tuple(full.shape) != full_shape(param):
        raise ValueError(f"weight of shape {tuple(full.shape)} for a parameter of shape {full_shape(param)}")
    with torch.no_grad():
        getattr(param, "weight_loader", _load_whole)(param, full)


def _load_whole(param: nn.Parameter, full: torch.Tensor) -> None:
    param.copy_(full)


def _load_slice(param: nn.Parameter, full: torch.Tensor, *, dim: int, rank: int, size: int) -> None:
    param.copy_(full.chunk(size, dim)[rank])
