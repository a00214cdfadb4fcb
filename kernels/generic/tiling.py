"""Fixed-shape row tiling: every call the backend sees has the same shape, whatever the batch."""
from __future__ import annotations

from typing import Callable

import torch


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x with zero rows appended up to a multiple of `rows`."""
    missing = -x.shape[0] % rows
    if missing == 0:
        return x
    return torch.cat([x, x.new_zeros((missing, *x.shape[1:]))])


def row_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, rows: int) -> torch.Tensor:
    """fn applied to `rows`-row tiles of x, so a row's result never depends on how many rows came with it."""
    padded = pad_rows(x, rows)
    tiles = [fn(tile) for tile in padded.split(rows)]
    return torch.cat(tiles)[: x.shape[0]]


def split_count_from_rows(num_rows: int) -> int:
    """How vendor heuristics pick a split: many splits for few rows, none for many (negative controls)."""
    if num_rows < 4:
        return 4
    if num_rows < 32:
        return 2
    return 1
