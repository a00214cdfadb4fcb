"""CPU log_softmax variants (fp32 result) over the vocabulary."""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.generic import primitives
from bi_bench.kernels.generic.tiling import row_tiled
from bi_bench.kernels.registry import fuses, register

TILE_ROWS = 8


@register("log_softmax", "cpu_canonical", devices=("cpu",), batch_invariant=True,
          description="C++: each row by one thread, exp-sums in 16 fixed lanes and a fixed tree, canonical exp "
                      "and log: the same bits for any batch, thread count and x86-64 CPU",
          # default mode's pick too: as fast as torch.log_softmax on a 64 x 49152 step and its greedy pick 2.6x
          # faster than torch.max plus a gather (docs/performance.md)
          preferred_for=("invariant", "default"))
def log_softmax_canonical(x: torch.Tensor) -> torch.Tensor:
    return extension().log_softmax(x)


@fuses("cpu_canonical", "log_softmax", "greedy")
def greedy_canonical(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return extension().greedy(logits)


@register("log_softmax", "cpu_tiled", devices=("cpu",), batch_invariant=True,
          description=f"{TILE_ROWS}-row tiles: each row reduced by the same fixed-shape torch call (torch's "
                      "exp and vector width still depend on the CPU build)")
def log_softmax_tiled(x: torch.Tensor) -> torch.Tensor:
    return row_tiled(primitives.log_softmax, x, TILE_ROWS)
