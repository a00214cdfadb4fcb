"""A results file over 25 MB is refused in one line (exit 2) before anything is written; the journal stays."""
from __future__ import annotations

from pathlib import Path

import pytest

from bi_bench.harness import results as results_module
from bi_bench.harness.environment import environment
from bi_bench.harness.journal import Journal, JournalHeader
from bi_bench.harness.results import load_results, save, slug
from conftest import invoke


def test_save_refuses_an_oversized_file(small_run: tuple[Path, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    results = load_results(small_run[1])
    monkeypatch.setattr(results_module, "MAX_RESULTS_BYTES", small_run[1].stat().st_size - 1)
    target = tmp_path / "big.json"
    with pytest.raises(ValueError, match=r"big.json: 0\.0 MB is over the 0\.0 MB a results file may have; not written"):
        save(target, results)
    assert list(tmp_path.iterdir()) == []


def test_run_refuses_it_in_one_line_and_keeps_the_journal(small_run: tuple[Path, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Resumed from a journal that holds every case, so nothing runs again."""
    suite, path = small_run
    results = load_results(path)
    folder = tmp_path / "out" / slug(f"{results.model.id}-{results.model.dtype}") / environment("cpu").hardware
    header = JournalHeader(run_id=results.run_id, started_at=results.started_at, suite_sha256=results.suite.sha256,
                           shard=None, quick=False, device="cpu", model=results.model.id, dtype=results.model.dtype)
    journal = Journal.create(folder / f"{results.run_id}.journal", header)
    for case in results.cases:
        journal.add_case(case)
    journal.add_throughput(results.throughput)
    monkeypatch.setattr(results_module, "MAX_RESULTS_BYTES", 1000)
    result = invoke("run", suite, "--out", tmp_path / "out", "--resume")
    assert result.exit_code == 2, result.output
    last = result.stderr.splitlines()[-1]  # after the progress lines
    assert last.startswith("error: ") and last.count("error") == 1 and "may have; not written" in last
    assert journal.path.exists() and list(folder.glob("*.json")) == []
