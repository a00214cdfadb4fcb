"""A run interrupted mid-way resumes to the same cases; shards merge into the unsharded run's cases."""
from __future__ import annotations

from pathlib import Path

import pytest

from bi_bench.harness.run import runner
from conftest import invoke, load, results_files


def cases_of(path: Path) -> list[dict]:
    return load(path)["cases"]


def test_interrupt_then_resume_equals_clean_run(small_run: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    suite, clean = small_run
    real_run_case = runner.run_case
    calls = []

    def interrupted_on_third_case(*args, **kwargs):
        calls.append(args[0].id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_case(*args, **kwargs)

    monkeypatch.setattr(runner, "run_case", interrupted_on_third_case)
    out = tmp_path / "out"
    first = invoke("run", suite, "--out", out)
    assert first.exit_code == 130 and "--resume" in first.stderr
    [journal] = out.glob("*/*/*.journal")
    assert len(journal.read_text().splitlines()) == 1 + 2  # header + two finished cases
    assert results_files(out) == []

    monkeypatch.setattr(runner, "run_case", real_run_case)
    second = invoke("run", suite, "--out", out, "--resume")
    assert second.exit_code == 0, second.output
    [resumed] = results_files(out)
    assert resumed.stem == journal.stem and not journal.exists()
    assert cases_of(resumed) == cases_of(clean)


def test_shards_merge_into_unsharded_cases(small_run: tuple[Path, Path], tmp_path: Path) -> None:
    suite, clean = small_run
    out = tmp_path / "out"
    for shard in ("1/2", "2/2"):
        assert invoke("run", suite, "--out", out, "--shard", shard).exit_code == 0
    shards = results_files(out)
    assert len(shards) == 2 and all(0 < len(cases_of(s)) < len(cases_of(clean)) for s in shards)
    merged = tmp_path / "merged.json"
    result = invoke("merge", *shards, "-o", merged)
    assert result.exit_code == 0, result.output
    assert cases_of(merged) == cases_of(clean)
    assert load(merged)["suite"]["shard"] is None and load(merged)["summary"] == load(clean)["summary"]
    assert invoke("validate", merged).exit_code == 0

    twice = invoke("merge", shards[0], shards[0], "-o", tmp_path / "twice.json")
    assert twice.exit_code == 2 and "twice" in twice.stderr
