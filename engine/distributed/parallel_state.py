"""The tensor-parallel group a model is built for: its rank, size, process group and all-reduce variant."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

from bi_bench.kernels import KernelVariant
from bi_bench.kernels.all_reduce import all_gather

# tp-invariant mode splits every row-parallel K and column-parallel N into this many chunks at any degree.
TP_INVARIANT_CHUNKS = 8
SETUP_TIMEOUT = timedelta(seconds=300)
COLLECTIVE_TIMEOUT = timedelta(seconds=8)  # a dead or stuck rank surfaces as an error within this


@dataclass(frozen=True)
class TensorParallelGroup:
    rank: int = 0
    size: int = 1
    process_group: dist.ProcessGroup | None = None
    all_reduce: KernelVariant | None = None
    chunks: int = 1  # global K/N chunk count of tp-invariant mode; 1: each rank's shard in one call

    @property
    def local_chunks(self) -> int:
        return max(1, self.chunks // self.size)

    def reduce(self, partial: torch.Tensor) -> torch.Tensor:
        """Sum of every rank's partial."""
        return partial if self.size == 1 else self.all_reduce.fn(partial, self.process_group)

    def gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's x, in rank order."""
        return [x] if self.size == 1 else all_gather(x, self.process_group)


def connect(rank: int, size: int, port: int, device: str) -> dist.ProcessGroup:
    """Joins the group whose store rank 0 serves on localhost:`port` (port 0 on rank 0: pick one)."""
    store = dist.TCPStore("127.0.0.1", port, size, is_master=rank == 0, timeout=SETUP_TIMEOUT,
                          wait_for_workers=False)
    return connect_store(store, rank, size, device)


def connect_store(store: dist.Store, rank: int, size: int, device: str) -> dist.ProcessGroup:
    if device == "cuda":
        group = dist.ProcessGroupNCCL(store, rank, size)
    else:
        group = dist.ProcessGroupGloo(store, rank, size, SETUP_TIMEOUT)
    group.set_timeout(COLLECTIVE_TIMEOUT)
    return group


_building: list[TensorParallelGroup] = [TensorParallelGroup()]


@contextlib.contextmanager
def building_for(group: TensorParallelGroup) -> Iterator[None]:
    """Layers constructed inside shard themselves for `group`."""
    _building.append(group)
    try:
        yield
    finally:
        _building.pop()


def current_group() -> TensorParallelGroup:
    return _building[-1]
