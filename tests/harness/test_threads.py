"""The threads check: each candidate runs at its own torch thread count, the harness's count comes back after."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bi_bench.engine import LLM
from bi_bench.engine import torch_threads
from conftest import invoke, load, results_files, small_document, write_suite


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(before + 2):
        assert torch.get_num_threads() == before + 2
    assert torch.get_num_threads() == before


def test_torch_threads_restores_on_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 3):
        raise RuntimeError("a generate that failed")
    assert torch.get_num_threads() == before


def test_each_run_has_its_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    generate = LLM.generate

    def counting(self: LLM, *args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(LLM, "generate", counting)
    document = small_document()  # its batch_size check is the control that must diverge
    document["checks"] = {"batch_size": document["checks"]["batch_size"],
                          "threads": {"thread_counts": [3, 6, 5], "batch_size": 2}}
    before = torch.get_num_threads()
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert [count for count in seen if count != before] == [3, 6, 5] * 2  # the rest ran at the harness's count
    assert torch.get_num_threads() == before
    cases = {c["mode"]: c for c in load(results_files(tmp_path / "out")[0])["cases"] if c["check"] == "threads"}
    labels = [c["label"] for c in cases["invariant"]["observations"][0]["candidates"]]
    assert [label.split(" pos=")[0] for label in labels] == ["threads=6 batch=2", "threads=5 batch=2"]
    assert cases["invariant"]["verdict"] == "pass" and cases["default"]["control"] is False


@pytest.mark.parametrize(("counts", "problem"), [([0, 2], "thread_counts[0]"), ([2], "thread_counts"),
                                                 ([1, 4096], "thread_counts[1]")])
def test_bad_thread_counts_are_one_line(tmp_path: Path, counts: list[int], problem: str) -> None:
    document = small_document()
    document["checks"] = {"threads": {"thread_counts": counts}}
    result = invoke("run", write_suite(tmp_path, document), "--dry-run")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert f"checks.threads.{problem}" in result.stderr and "Traceback" not in result.output


def test_tiny_suite_threads_case(tiny_run: tuple[int, Path]) -> None:
    cases = {c["mode"]: c for c in load(tiny_run[1])["cases"] if c["check"] == "threads"}
    assert cases["invariant"]["verdict"] == "pass" and cases["invariant"]["metrics"]["trials"] == 5
    assert cases["default"]["control"] is False and cases["default"]["verdict"] in ("equal", "diverged")
