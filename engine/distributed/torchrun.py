"""Tensor parallelism under torchrun: one rank per process, on one node or many.

Every rank runs the user's script. On rank 0, `LLM(...)` drives as usual. On ranks 1..N-1 it builds that rank's
shard, runs the steps rank 0 publishes until rank 0 closes its LLM (or exits), then exits the process: code
after the constructor runs on rank 0 only. Ranks meet through torchrun's rendezvous (MASTER_ADDR:MASTER_PORT).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator, NoReturn

import torch
import torch.distributed as dist

from bi_bench.engine.config import EngineConfig
from bi_bench.engine.distributed.parallel_state import SETUP_TIMEOUT, connect_store
from bi_bench.engine.distributed.weight_update import RankMessage

# Ranks 1..N-1 wait on the step channel for as long as rank 0 leaves them idle between requests; a rank that
# dies is torchrun's to handle: it stops every rank of the job.
IDLE_TIMEOUT = timedelta(days=7)
_engines = itertools.count()  # every rank builds its engines in the same order, so the n-th ones meet


@dataclass(frozen=True)
class TorchrunLaunch:
    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls) -> TorchrunLaunch | None:
        """This process's place in a torchrun (or any env:// launcher) job; None outside one."""
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ or "MASTER_ADDR" not in os.environ:
            return None
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


class StepChannel:
    """Rank 0 broadcasts each message (a step's few lists of ints, pickled) over a gloo group of its own."""

    def __init__(self, store: dist.Store, rank: int, size: int) -> None:
        self.group = dist.ProcessGroupGloo(dist.PrefixStore("steps", store), rank, size, IDLE_TIMEOUT)

    def publish(self, message: RankMessage | None) -> None:
        payload = torch.frombuffer(bytearray(pickle.dumps(message)), dtype=torch.uint8)
        self.group.broadcast(torch.tensor([len(payload)]), 0).wait()
        self.group.broadcast(payload, 0).wait()

    def receive(self) -> RankMessage | None:
        length = torch.zeros(1, dtype=torch.int64)
        self.group.broadcast(length, 0).wait()
        payload = torch.empty(int(length), dtype=torch.uint8)
        self.group.broadcast(payload, 0).wait()
        return pickle.loads(payload.numpy().tobytes())


@dataclass
class Membership:
    rank: int
    process_group: dist.ProcessGroup
    store: dist.Store
    steps: StepChannel


def join(config: EngineConfig, launch: TorchrunLaunch) -> Membership:
    store, rank, size = next(dist.rendezvous("env://", timeout=SETUP_TIMEOUT))
    space = dist.PrefixStore(f"bi-bench/engine{next(_engines)}", store)
    if config.device == "cuda":
        torch.cuda.set_device(launch.local_rank)
    group = connect_store(dist.PrefixStore("model", space), rank, size, config.device)
    return Membership(rank, group, space, StepChannel(space, rank, size))


class TorchrunPeers:
    """Rank 0's side: publishes each message to ranks 1..N-1 (the interface of WorkerPool)."""

    def __init__(self, config: EngineConfig, launch: TorchrunLaunch) -> None:
        self.size = config.tensor_parallel_size
        self.membership = join(config, launch)
        self.process_group = self.membership.process_group
        self._finalizer = weakref.finalize(self, self.membership.steps.publish, None)

    def wait_ready(self) -> None:
        self.membership.store.wait([f"ready/{rank}" for rank in range(1, self.size)], SETUP_TIMEOUT)

    def send(self, message: RankMessage) -> None:
        if not self._finalizer.alive:
            raise RuntimeError("the tensor-parallel ranks were released; create a new LLM")
        self.membership.steps.publish(message)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Nothing to stop here: when a rank fails, torchrun stops every rank of the job."""
        yield

    def stepping(self) -> Iterator[None]:
        """guard(): torchrun gives each rank its own thread count (OMP_NUM_THREADS)."""
        return self.guard()

    def close(self) -> None:
        self._finalizer()


def serve(config: EngineConfig, launch: TorchrunLaunch) -> NoReturn:
    """Ranks 1..N-1: build this rank's shard, run rank 0's steps until it closes, then exit the process."""
    from bi_bench.engine.loader import resolve
    from bi_bench.engine.model_runner import ModelRunner

    membership = join(config, launch)
    runner = ModelRunner(config, resolve(config.model), membership.rank, membership.process_group)
    membership.store.set(f"ready/{membership.rank}", b"")
    while (message := membership.steps.receive()) is not None:
        runner.execute(message)
    raise SystemExit(0)
