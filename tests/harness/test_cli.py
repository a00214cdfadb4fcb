"""ls, compare, --dry-run and --quick behave and stay one line on bad input."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from bi_bench.harness.checks import CHECKS
from conftest import TINY, invoke, load, nudge_logprob


@pytest.mark.parametrize(("what", "expected"), [("models", "random:tiny-qwen3"), ("models", "gemma3-270m"),
                                                ("kernels", "cpu_min_rows"), ("checks", "unique_completions")])
def test_ls(what: str, expected: str) -> None:
    result = invoke("ls", what)
    assert result.exit_code == 0 and expected in result.output


def test_ls_checks_lists_every_check() -> None:
    output = invoke("ls", "checks").output
    assert all(name in output for name in CHECKS)


def test_dry_run_lists_the_matrix_and_shards_split_it() -> None:
    everything = invoke("run", TINY, "--dry-run").output.splitlines()
    halves = [invoke("run", TINY, "--dry-run", "--shard", f"{i}/2").output.splitlines() for i in (1, 2)]
    assert len(everything) == 20 and sorted(halves[0] + halves[1]) == sorted(everything)
    assert not set(halves[0]) & set(halves[1])


def test_quick_reduces_the_suite() -> None:
    from bi_bench.harness.suite.load import load_suite

    quick = load_suite(TINY, quick=True)
    assert quick.is_quick and quick.checks["batch_size"].trials == 1 and quick.suite.sampling.max_tokens <= 4


def test_compare_names_changed_case(copy_results: Callable[[], Path], small_run: tuple[Path, Path]) -> None:
    edited = copy_results()
    data = load(edited)
    case = next(c for c in data["cases"] if c["verdict"] == "pass")
    nudge_logprob(case["observations"][0]["reference"])
    case["digests"][0]["reference"]["logprobs"] = "0" * 64
    data["environment"]["torch"] = "9.9.9"
    edited.write_text(json.dumps(data))
    result = invoke("compare", small_run[1], edited)
    assert result.exit_code == 0, result.output
    assert case["id"] in result.output and "9.9.9" in result.output
    assert "unchanged" in invoke("compare", small_run[1], small_run[1]).output


def test_compare_unreadable_exits_2(tmp_path: Path) -> None:
    result = invoke("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert result.exit_code == 2 and result.stderr.startswith("error:")


@pytest.mark.parametrize("suite", sorted((TINY.parent).glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_load(suite: Path) -> None:
    result = invoke("run", suite, "--dry-run")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) >= 8
