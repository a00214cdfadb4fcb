"""New weights for tensor-parallel ranks 1..N-1: rank 0 announces names, shapes and dtypes through its step
channel, then broadcasts each full tensor on the model's process group; each rank cuts its own shard."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from bi_bench.engine.forward_batch import StepInputs


@dataclass(frozen=True)
class WeightUpdate:
    specs: list[tuple[str, tuple[int, ...], torch.dtype]]  # the broadcasts that follow, in this order

    @classmethod
    def of(cls, state: dict[str, torch.Tensor]) -> WeightUpdate:
        return cls([(name, tuple(t.shape), t.dtype) for name, t in state.items()])

    def broadcast(self, state: dict[str, torch.Tensor], group: dist.ProcessGroup, device: str) -> None:
        for name, _, _ in self.specs:
            group.broadcast(state[name].to(device).contiguous(), 0).wait()

    def receive(self, group: dist.ProcessGroup, device: str) -> dict[str, torch.Tensor]:
        state = {}
        for name, shape, dtype in self.specs:
            state[name] = torch.empty(shape, dtype=dtype, device=device)
            group.broadcast(state[name], 0).wait()
        return state


RankMessage = StepInputs | WeightUpdate  # what rank 0 sends ranks 1..N-1; None tells them to stop
