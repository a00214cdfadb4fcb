"""A CPU engine's process keeps freed step buffers mapped: the next step's buffers of the same size take no page
faults. The control holds glibc at its starting threshold (128 KiB), under which every such buffer is mapped anew
and faulted in page by page, as half of the processes measured did between decode steps."""
from __future__ import annotations

import subprocess
import sys

import pytest

STEPS = 10
PAGES_PER_BUFFER = 64 * 49152 * 4 // 4096  # a 64-row step's fp32 logits over SmolLM2's vocabulary

SCRIPT = f"""
import ctypes, resource, sys, torch
from bi_bench.engine import LLM
from bi_bench.engine.host_memory import M_MMAP_THRESHOLD
LLM("random:tiny-qwen3", dtype="float32", max_num_seqs=2, max_model_len=32)
if sys.argv[1] == "control":
    ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 << 10)
def step():  # logits, their log_softmax and a copy alive together, as in a sampled step
    buffers = [torch.empty(64, 49152).fill_(1.0) for _ in range(3)]
step(); step()  # the heap grows to the buffer's size once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({STEPS}):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_cpu_engine_reuses_freed_step_buffers() -> None:
    assert page_faults("engine") < PAGES_PER_BUFFER // 10
    assert page_faults("control") >= 3 * STEPS * PAGES_PER_BUFFER
