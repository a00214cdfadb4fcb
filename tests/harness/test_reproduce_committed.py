"""The committed results files of the real models reproduce on whatever machine runs this (cases drawn at random)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bi_bench.engine import DTYPES
from bi_bench.harness.results.reproduction import is_reproduction
from conftest import REPO, invoke


def committed(model: str) -> list[Path]:
    """Runs of bi-bench's own engine: results/<model>-<dtype>/ (other engines' folders add their backend)."""
    ours = {f"{model}-{dtype}" for dtype in DTYPES}
    return sorted(p for p in (REPO / "results").glob(f"{model}-*/cpu-*/*.json")
                  if not is_reproduction(p) and p.parent.parent.name in ours)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_committed_results_reproduce(tmp_path: Path, model: str) -> None:
    files = committed(model)
    assert files, f"no {model} CPU results file under results/"
    newest = max(files, key=lambda p: p.name)  # run ids are UTC timestamps: clone order does not matter
    copy = tmp_path / newest.name  # the reproduction is written beside it, not into results/
    shutil.copyfile(newest, copy)
    result = invoke("reproduce", copy, "--sample", "2")
    assert result.exit_code == 0, result.output + result.stderr
