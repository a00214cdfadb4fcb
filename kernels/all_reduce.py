"""all_reduce variants: combine per-rank partial sums over a torch.distributed process group (gloo or NCCL)."""
from __future__ import annotations

import torch
from torch.distributed import ProcessGroup

from bi_bench.kernels.generic.tiling import split_count_from_rows
from bi_bench.kernels.registry import register


def all_gather(x: torch.Tensor, group: ProcessGroup) -> list[torch.Tensor]:
    """Every rank's x, in rank order."""
    x = x.contiguous()
    gathered = [torch.empty_like(x) for _ in range(group.size())]
    group.allgather([gathered], [x]).wait()
    return gathered


def tree_sum(parts: list[torch.Tensor]) -> torch.Tensor:
    """Sum by a fixed balanced binary tree over the parts in list order: ((p0+p1)+(p2+p3))+..."""
    while len(parts) > 1:
        paired = [a + b for a, b in zip(parts[0::2], parts[1::2])]
        parts = paired + parts[len(paired) * 2:]
    return parts[0]


@register("all_reduce", "backend", devices=("cpu", "cuda"), batch_invariant=False,
          description="the backend's own all_reduce: gloo/NCCL may pick the algorithm from the message size",
          preferred_for=("default",))
def all_reduce_backend(partial: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    out = partial.contiguous().clone()
    group.allreduce([out]).wait()
    return out


@register("all_reduce", "rank_ordered", devices=("cpu", "cuda"), batch_invariant=True, tp_invariant=True,
          description="all_gather the partials, then sum them on every rank by a fixed tree in rank order",
          preferred_for=("invariant",))
def all_reduce_rank_ordered(partial: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    return tree_sum(all_gather(partial, group))


@register("all_reduce", "size_dependent", devices=("cpu", "cuda"), batch_invariant=False,
          description="column chunks whose count follows M, each summed in a rotated rank order (negative control)")
def all_reduce_size_dependent(partial: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    # A two-term sum is the same in either order, so this only changes bits from 3 ranks on.
    gathered = all_gather(partial, group)
    chunks = split_count_from_rows(partial.shape[0])
    pieces = []
    for j, columns in enumerate(zip(*(g.chunk(chunks, dim=-1) for g in gathered))):
        start = j % len(columns)
        rotated = columns[start:] + columns[:start]
        total = rotated[0]
        for column in rotated[1:]:
            total = total + column
        pieces.append(total)
    return torch.cat(pieces, dim=-1)
