"""A results file over 25 MB is refused in one line (exit 2) before anything is written; the journal stays. And
benchmarks/results_size.py, which grows a real file to a bigger suite's counts to size it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from bi_bench.harness.results import file as results_module
from bi_bench.harness.results.file import load_results, save, slug
from bi_bench.harness.results.observations import Observation
from bi_bench.harness.results.repeats import expanded
from bi_bench.harness.run.environment import environment
from bi_bench.harness.run.journal import Journal, JournalHeader
from bi_bench.harness.suite.load import load_suite
from conftest import REPO, invoke, write_suite

sys.path.insert(0, str(REPO / "benchmarks"))
import results_size  # noqa: E402


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


def target_suite(small_run: tuple[Path, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    document = yaml.safe_load(small_run[0].read_text())
    edit(document)
    return write_suite(tmp_path, document, "target.yaml")


def grown_to(small_run: tuple[Path, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    return results_size.report(small_run[1], target_suite(small_run, tmp_path, edit))


def test_growing_a_file_to_its_own_suite_gives_its_own_size(small_run: tuple[Path, Path], tmp_path: Path) -> None:
    found = grown_to(small_run, tmp_path, lambda document: None)
    assert found["bytes"] == found["measured"]["bytes"] == small_run[1].stat().st_size


def test_growing_repeats_needles_and_runs_and_keeps_distinct_runs_distinct(small_run: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    results = load_results(small_run[1])
    needles = results.suite.config["workload"]["needles"]

    def more(document: dict[str, Any]) -> None:
        document["workload"]["needles"] = 2 * needles
        document["checks"]["batch_size"]["trials"] = 3

    grown = results_size.grow(results, load_suite(target_suite(small_run, tmp_path, more)))
    position = next(i for i, c in enumerate(results.cases) if c.check == "batch_size" and c.mode == "default")
    measured, case = results.cases[position], grown["cases"][position]
    assert len(case["observations"]) == 2 * needles == 2 * len(measured.observations)
    group, source = expanded(case["observations"][0]), measured.observations[0]
    assert len(group["candidates"]) == 3 * len(source.candidates)
    runs = [group["reference"]] + [c["observation"] for c in group["candidates"]]
    distinct_measured = len({results_size.bits(Observation(**o)) for o in runs[:1 + len(source.candidates)]})
    assert len({results_size.bits(Observation(**o)) for o in runs}) == 1 + 3 * (distinct_measured - 1)
    assert grown_to(small_run, tmp_path, more)["bytes"] > small_run[1].stat().st_size


def test_growing_refuses_another_matrix(small_run: tuple[Path, Path], tmp_path: Path) -> None:
    def other(document: dict[str, Any]) -> None:
        document["models"][0]["tp"] = [1, 2]
    with pytest.raises(SystemExit, match="another case matrix"):
        grown_to(small_run, tmp_path, other)
