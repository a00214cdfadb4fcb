"""The committed smollm2 results file reproduces on whatever machine runs this (two cases drawn at random)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bi_bench.harness.reproduction import is_reproduction
from conftest import REPO, invoke

COMMITTED = sorted(p for p in (REPO / "results").glob("smollm2-135m-*/cpu-*/*.json") if not is_reproduction(p))


@pytest.mark.slow
@pytest.mark.skipif(not COMMITTED, reason="no smollm2-135m CPU results file under results/")
def test_committed_smollm2_results_reproduce(tmp_path: Path) -> None:
    newest = max(COMMITTED, key=lambda p: p.stat().st_mtime)
    copy = tmp_path / newest.name  # the reproduction is written beside it, not into results/
    shutil.copyfile(newest, copy)
    result = invoke("reproduce", copy, "--sample", "2")
    assert result.exit_code == 0, result.output + result.stderr
