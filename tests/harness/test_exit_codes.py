"""Exit 1 when an invariance claim fails, and when no negative control diverges (said loudly)."""
from __future__ import annotations

from pathlib import Path

from conftest import invoke, load, results_files, small_document, write_suite


def test_broken_claim_fails_the_run(tmp_path: Path) -> None:
    document = small_document()
    document["kernels"] = {"invariant": {"matmul": ["split_k"]}}  # not batch invariant, yet claimed
    document["checks"] = {"batch_size": {"batch_sizes": [1, 2, 12], "trials": 1}}
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    [path] = results_files(tmp_path / "out")
    case = next(c for c in load(path)["cases"] if c["mode"] == "invariant")
    assert case["verdict"] == "fail" and case["kernels"]["matmul"] == "split_k"
    assert case["metrics"]["first_divergence"] is not None
    assert "FAILED" in result.stdout
    assert invoke("validate", path).exit_code == 0  # a failing run is still a valid record of that failure


def test_no_diverging_control_is_loud(tmp_path: Path) -> None:
    document = small_document()
    document["checks"] = {"repeat": {"runs": 2, "batch_size": 2, "control": True}}  # run-to-run never diverges here
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "NO NEGATIVE CONTROL DIVERGED" in result.stdout
    [path] = results_files(tmp_path / "out")
    summary = load(path)["summary"]
    assert summary["no_control_diverged"] and summary["controls"] == 1 and not summary["ok"]
