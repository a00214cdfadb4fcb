"""Launching and stopping tensor-parallel ranks: under torchrun (ranks are the job's processes) the outputs equal
TP=1 bitwise in tp-invariant mode, before and after a weight update; Ctrl-C on a spawned TP job stops every rank."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bi_bench.engine import LLM
from processes import running
from torchrun_generate import MODEL, observe, perturbed

HERE = Path(__file__).parent


def in_own_session(command: list[str]) -> subprocess.Popen:
    """A job in a session of its own, as if started from a terminal: its process group can be signalled whole."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_if_running(job: subprocess.Popen) -> None:
    """Leaves no rank behind when a test fails half way."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


def run_torchrun(ranks: int, mode: str, out: Path) -> tuple[int, str]:
    job = in_own_session([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                          str(HERE / "torchrun_generate.py"), mode, str(out)])
    try:
        _, stderr = job.communicate(timeout=300)
    finally:
        kill_if_running(job)
    return job.returncode, stderr


def test_torchrun_ranks_equal_tp1_bitwise(tmp_path: Path) -> None:
    out = tmp_path / "tp2.json"
    returncode, stderr = run_torchrun(2, "tp-invariant", out)
    assert returncode == 0, stderr[-3000:]
    written = json.loads(out.read_text())
    assert written["rank"] == 0
    llm = LLM(MODEL, dtype="float32", mode="tp-invariant")
    assert written["before"] == observe(llm)
    llm.update_weights(perturbed(llm.state_dict()))
    assert written["after"] == observe(llm) != written["before"]


def test_torchrun_world_size_must_equal_degree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with pytest.raises(ValueError, match="tensor_parallel_size=2 but torchrun started WORLD_SIZE=4"):
        LLM(MODEL, tensor_parallel_size=2)


def test_ctrl_c_stops_every_rank() -> None:
    # Ctrl-C in a terminal sends SIGINT to every process of the foreground group.
    job = in_own_session([sys.executable, str(HERE / "interrupted_generate.py")])
    try:
        workers = [int(pid) for pid in job.stdout.readline().split()]
        assert job.stdout.readline().strip() == "generating"
        time.sleep(1.0)
        os.killpg(job.pid, signal.SIGINT)
        pressed = time.monotonic()
        try:
            _, stderr = job.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # the pipes stay open while any rank holds them
            pytest.fail(f"60 s after Ctrl-C: rank 0 running {running(job.pid)}, "
                        f"workers running {[running(pid) for pid in workers]}")
        stopped_after = time.monotonic() - pressed
    finally:
        kill_if_running(job)
    assert "KeyboardInterrupt" in stderr, stderr[:300] + "\n...\n" + stderr[-3000:]
    assert job.returncode != 0
    assert stopped_after < 10, stderr[-3000:]
    assert len(workers) == 1 and not any(running(pid) for pid in workers)
