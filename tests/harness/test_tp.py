"""The tp check at TP=2: tp-invariant mode claims TP=2 equals TP=1, plain invariant mode does not."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke, load, results_files, small_document, write_suite


@pytest.mark.slow  # TP engines start worker processes
def test_tp_check(tmp_path: Path) -> None:
    document = small_document()
    document["models"][0]["tp"] = [2]
    document["modes"] = ["tp-invariant", "invariant"]
    document["checks"] = {"tp": {"batch_size": 3}}
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    verdicts = {c["id"]: c["verdict"] for c in load(path)["cases"]}
    assert verdicts["tp/tp-invariant/tp2"] == "pass"
    assert verdicts["tp/default/tp2"] == "diverged"
    assert verdicts["tp/invariant/tp2"] in ("equal", "diverged")  # reported, never claimed
    assert result.exit_code == 0, result.output
    assert invoke("validate", path).exit_code == 0
    reproduced = invoke("reproduce", path, "--cases", "tp/tp-invariant/*")  # TP=2 and TP=1 engines again
    assert reproduced.exit_code == 0, reproduced.output
