"""CPU log_softmax variants (fp32 result) over the vocabulary."""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu import primitives
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.tiling import row_tiled, split_count_from_rows
from bi_bench.kernels.registry import register

TILE_ROWS = 8


@register("log_softmax", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="torch.log_softmax on the whole batch", preferred_for=("default",))
def log_softmax_torch(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x.float(), dim=-1)


@register("log_softmax", "cpu_canonical", devices=("cpu",), batch_invariant=True,
          description="C++: each row by one thread, exp-sums in 16 fixed lanes and a fixed tree, canonical exp "
                      "and log: the same bits for any batch, thread count and x86-64 CPU",
          preferred_for=("invariant",))
def log_softmax_canonical(x: torch.Tensor) -> torch.Tensor:
    return extension().log_softmax(x)


@register("log_softmax", "cpu_tiled", devices=("cpu",), batch_invariant=True,
          description=f"{TILE_ROWS}-row tiles: each row reduced by the same fixed-shape torch call (torch's "
                      "exp and vector width still depend on the CPU build)")
def log_softmax_tiled(x: torch.Tensor) -> torch.Tensor:
    return row_tiled(primitives.log_softmax, x, TILE_ROWS)


@register("log_softmax", "split", devices=("cpu", "cuda"), batch_invariant=False,
          description="vocabulary split into partial log-sum-exps whose count follows M (negative control)")
def log_softmax_split(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    chunks = x.chunk(split_count_from_rows(x.shape[0]) * 3, dim=-1)
    partial_lse = torch.stack([torch.logsumexp(c, dim=-1) for c in chunks], dim=-1)
    return x - torch.logsumexp(partial_lse, dim=-1, keepdim=True)
