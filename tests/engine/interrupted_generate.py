"""A TP=2 generation that runs until interrupted: prints its workers' pids, then `generating`.
Used by test_tensor_parallel_launch.py to press Ctrl-C on it."""
from __future__ import annotations

import faulthandler
import sys

from bi_bench.engine import LLM, SamplingParams

if __name__ == "__main__":
    llm = LLM("random:tiny-qwen3", dtype="float32", tensor_parallel_size=2)
    print(" ".join(str(process.pid) for process in llm.engine.workers.processes), flush=True)
    print("generating", flush=True)
    faulthandler.dump_traceback_later(25, exit=True, file=sys.stderr)  # a hang after Ctrl-C shows where it hangs
    llm.generate([[5, 6, 7]] * 4, SamplingParams(max_tokens=100_000, ignore_eos=True))
