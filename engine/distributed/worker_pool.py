"""Rank 0's side of tensor parallelism: spawns the worker processes once per engine, sends them each step,
and turns a dead worker or an interrupt into stopping every rank."""
from __future__ import annotations

import contextlib
import time
import weakref
from multiprocessing.connection import Connection
from typing import Iterator

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bi_bench.engine.config import EngineConfig
from bi_bench.engine.distributed.parallel_state import SETUP_TIMEOUT, connect_store
from bi_bench.engine.distributed.weight_update import RankMessage
from bi_bench.engine.distributed.worker import worker_main
from bi_bench.engine.threads import torch_threads

STOP_GRACE_SECONDS = 3.0


class WorkerError(RuntimeError):
    pass


class WorkerPool:
    def __init__(self, config: EngineConfig) -> None:
        size = config.tensor_parallel_size
        store = dist.TCPStore("127.0.0.1", 0, size, is_master=True, timeout=SETUP_TIMEOUT, wait_for_workers=False)
        context = mp.get_context("spawn")
        self.config = config
        threads = threads_per_rank(config)
        self.conns: list[Connection] = []
        self.processes: list[mp.Process] = []
        for rank in range(1, size):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=worker_main, args=(rank, config, store.port, child_end, threads),
                                      name=f"bi-bench-tp-rank{rank}", daemon=True)
            process.start()
            child_end.close()
            self.conns.append(parent_end)
            self.processes.append(process)
        self._finalizer = weakref.finalize(self, _stop, self.processes, self.conns)
        with self.guard():
            self._wait_for("imported")
            self.process_group = connect_store(store, 0, size, config.device)

    def wait_ready(self) -> None:
        """Waits until every worker has built its shard; call inside guard()."""
        self._wait_for("ready")

    def send(self, message: RankMessage) -> None:
        if not self._finalizer.alive:
            raise WorkerError("tensor-parallel workers were shut down; create a new LLM")
        for conn in self.conns:
            conn.send(message)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Any failure inside stops every worker; one caused by a dead worker is reported as that."""
        try:
            yield
        except BaseException as exc:
            dead = self._dead()
            self._terminate()
            if dead and isinstance(exc, Exception) and not isinstance(exc, WorkerError):
                raise WorkerError(f"tensor-parallel {dead}; all ranks were stopped") from exc
            raise

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """guard(), with rank 0 on its share of the caller's current threads (a `threads` check still moves it)."""
        share = threads_per_rank(self.config)
        with self.guard(), torch_threads(share) if share is not None else contextlib.nullcontext():
            yield

    def close(self) -> None:
        self._finalizer()

    def _terminate(self) -> None:
        """Stops every worker now: after a failure they may be stuck in a collective, deaf to a stop message."""
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        self.close()

    def _wait_for(self, message: str) -> None:
        for rank, conn in enumerate(self.conns, start=1):
            while not conn.poll(0.2):
                if dead := self._dead():
                    raise WorkerError(f"tensor-parallel {dead} while starting")
            try:
                got = conn.recv()
            except EOFError:
                raise WorkerError(f"tensor-parallel worker rank {rank} exited while starting (a script that "
                                  "makes an LLM needs an `if __name__ == '__main__':` guard)") from None
            if got != message:
                raise WorkerError(f"tensor-parallel worker rank {rank} sent {got!r}, expected {message!r}")

    def _dead(self) -> str:
        """'worker rank R exited with code C' for the first dead worker, '' when all live."""
        for rank, process in enumerate(self.processes, start=1):
            if not process.is_alive():
                return f"worker rank {rank} exited with code {process.exitcode}"
        return ""


def threads_per_rank(config: EngineConfig) -> int | None:
    """On a CPU the spawned ranks share this process's cores: each gets its share of torch's current threads, or
    their OpenMP threads outnumber the cores and spin against each other (measured on 2 cores: a TP 4 case took
    53.5 s with every rank at torch's default count, 28.2 s with shares). None: leave the count as it is."""
    if config.device != "cpu":
        return None
    return max(1, torch.get_num_threads() // config.tensor_parallel_size)


def _stop(processes: list[mp.Process], conns: list[Connection]) -> None:
    """Asks each worker to stop, then terminates and finally kills whatever is left."""
    for conn in conns:
        with contextlib.suppress(OSError, ValueError):
            conn.send(None)
            conn.close()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join()

