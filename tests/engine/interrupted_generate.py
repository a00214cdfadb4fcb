"""A TP=2 generation that runs until interrupted: prints its workers' pids, then `generating`.
Used by test_tensor_parallel_launch.py to press Ctrl-C on it."""
from __future__ import annotations

import faulthandler
import signal
import sys
from pathlib import Path

from bi_bench.engine import LLM, SamplingParams


def inherited_signal_masks() -> str:
    """This process's blocked, ignored and caught signals as it started (/proc; SIGINT is bit 2, 0x2)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return " ".join(line.replace("\t", "") for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


if __name__ == "__main__":
    print("inherited:", inherited_signal_masks(), file=sys.stderr, flush=True)
    # As a terminal starts a job: whatever launched this one (a test worker) may have left SIGINT ignored or blocked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    llm = LLM("random:tiny-qwen3", dtype="float32", tensor_parallel_size=2)
    print(" ".join(str(process.pid) for process in llm.engine.workers.processes), flush=True)
    print("generating", flush=True)
    faulthandler.dump_traceback_later(25, exit=True, file=sys.stderr)  # a hang after Ctrl-C shows where it hangs
    llm.generate([[5, 6, 7]] * 4, SamplingParams(max_tokens=100_000, ignore_eos=True))
