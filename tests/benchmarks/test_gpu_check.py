"""benchmarks/gpu_check.py without a GPU: the dry run, and steps that fail or run out of time."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))

import gpu_check  # noqa: E402


def test_dry_run_lists_the_steps_within_seconds_without_importing_torch() -> None:
    start = time.monotonic()
    probe = ("import runpy, sys; sys.argv = ['gpu_check', '--dry-run']\n"
             f"try: runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
             "except SystemExit as exit: assert exit.code == 0, exit.code\n"
             "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 5
    names = [line.split()[0] for line in done.stdout.splitlines()[:-2]]
    assert names == ["prepare", "environment", "gpu-tests", "needles", "throughput", "suite"]
    assert done.stdout.splitlines()[-1] == "no torch"


def test_a_failing_or_slow_step_is_reported_and_the_rest_still_run(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    python = sys.executable
    fake = [gpu_check.Step("fails", "", 30, ((python, "-c", "print('>> broke'); raise SystemExit(3)"),)),
            gpu_check.Step("hangs", "", 2, ((python, "-c", "import time; time.sleep(60)"),)),
            gpu_check.Step("side-by-side", "", 30, ((python, "-c", "print('>> one')"), (python, "-c", "print(2)")))]
    monkeypatch.setattr(gpu_check, "steps", lambda out, suite_out: fake)
    start = time.monotonic()
    outcomes = gpu_check.run_all(tmp_path)
    assert time.monotonic() - start < 20
    assert [(o.name, o.status, o.detail) for o in outcomes] == [
        ("fails", "failed", "broke"), ("hangs", "timed out", ""), ("side-by-side", "ok", "one")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt", "summary.json"]
    assert "===== fails:" in (tmp_path / "log.txt").read_text()
