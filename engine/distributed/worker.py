"""A tensor-parallel worker process (ranks 1..N-1): builds its shard of the model, then runs the steps and weight
updates rank 0 sends it until told to stop or rank 0 goes away."""
from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection

import torch

from bi_bench.engine.config import EngineConfig
from bi_bench.engine.distributed.weight_update import RankMessage

POLL_SECONDS = 1.0


def worker_main(rank: int, config: EngineConfig, port: int, conn: Connection, threads: int | None) -> None:
    # Ctrl-C reaches every process of the terminal; rank 0 alone decides, and stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from bi_bench.engine.distributed.parallel_state import connect
    from bi_bench.engine.loader import resolve
    from bi_bench.engine.model_runner import ModelRunner

    if config.device == "cuda":
        torch.cuda.set_device(rank)
    if threads is not None:
        torch.set_num_threads(threads)
    parent = os.getppid()
    conn.send("imported")
    group = connect(rank, config.tensor_parallel_size, port, config.device)
    runner = ModelRunner(config, resolve(config.model), rank, group)
    conn.send("ready")
    while (message := _next_message(conn, parent)) is not None:
        runner.execute(message)


def _next_message(conn: Connection, parent: int) -> RankMessage | None:
    """The next message, or None when told to stop or orphaned."""
    while not conn.poll(POLL_SECONDS):
        if os.getppid() != parent:
            return None
    try:
        return conn.recv()
    except EOFError:
        return None
