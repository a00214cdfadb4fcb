"""validate recomputes everything from the raw observations: any edited figure is named and rejected."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import invoke, load, nudge_logprob, own_observation


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = load(path)
    change(data)
    path.write_text(json.dumps(data))


def diverged_case(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return next((i, c) for i, c in enumerate(data["cases"]) if c["verdict"] == "diverged")


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}-edited"


@pytest.mark.parametrize("field", ["bitwise_equal", "trials", "mismatching_tokens", "first_divergence",
                                   "first_divergence_at", "max_abs_dlogprob", "kl_estimate", "distinct_completions"])
def test_edited_metric_is_named(copy_results: Callable[[], Path], field: str) -> None:
    path = copy_results()
    index, _ = diverged_case(load(path))
    edit(path, lambda d: d["cases"][index]["metrics"].__setitem__(field, changed(d["cases"][index]["metrics"][field])))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"cases[{index}].metrics.{field}: recorded" in result.output


@pytest.mark.parametrize("verdict", ["pass", "fail", "equal", "skipped"])
def test_edited_verdict_is_named(copy_results: Callable[[], Path], verdict: str) -> None:
    path = copy_results()
    index, _ = diverged_case(load(path))
    edit(path, lambda d: d["cases"][index].__setitem__("verdict", verdict))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"cases[{index}].verdict" in result.output or f"cases[{index}].observations" in result.output


@pytest.mark.parametrize("where", [("summary", "ok"), ("summary", "controls_diverged"), ("summary", "validated"),
                                   ("throughput", "overhead")])
def test_edited_summary_figure_is_named(copy_results: Callable[[], Path], where: tuple[str, str]) -> None:
    path = copy_results()
    section, field = where
    edit(path, lambda d: d[section].__setitem__(field, changed(d[section][field])))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"{section}.{field}: recorded" in result.output


@pytest.mark.parametrize("field", ["tokens", "seconds", "tokens_per_s", "overhead"])
def test_edited_setting_throughput_is_named(copy_results: Callable[[], Path], field: str) -> None:
    path = copy_results()
    edit(path, lambda d: (setting := d["throughput"]["settings"][1]).__setitem__(field, changed(setting[field])))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"throughput.settings[1].{field}: recorded" in result.output


def test_edited_throughput_run_is_recomputed(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    edit(path, lambda d: d["throughput"]["runs"][1].__setitem__("seconds", d["throughput"]["runs"][1]["seconds"] * 2))
    output = invoke("validate", path).output
    assert "throughput.settings[1].tokens_per_s: recorded" in output and "throughput.overhead: recorded" in output


def test_runs_without_a_baseline_are_named(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    edit(path, lambda d: [run.__setitem__("kernel_overrides", {"matmul": "split_k"}) for run in d["throughput"]["runs"]
                          if run["mode"] == "default"])
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "throughput.runs: no runs in default mode at TP 1 with its own kernels" in result.output


def test_older_schema_is_named_with_what_to_do(copy_results: Callable[[], Path]) -> None:
    """One line, not one per field whose meaning changed since."""
    path = copy_results()

    def as_schema_2(data: dict[str, Any]) -> None:
        data["schema_version"] = 2
        del data["suite"]["source"]

    edit(path, as_schema_2)
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "schema_version: Value error, 2 is not 3: a schema 2 file" in result.output
    assert "rerun its suite" in result.output


def test_edited_observation_breaks_digest_and_metrics(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    index = next(i for i, c in enumerate(load(path)["cases"]) if c["verdict"] == "pass")

    edit(path, lambda data: nudge_logprob(own_observation(data["cases"][index]["observations"][0], 0)))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"cases[{index}].digests[0].candidates[0].logprobs" in result.output
    assert f"cases[{index}].verdict: recorded 'pass', recomputed 'fail'" in result.output


def test_schema_violation_names_field(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    edit(path, lambda d: d["cases"][0].__setitem__("verdict", "maybe"))
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "cases[0].verdict" in result.output


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2"])
def test_unreadable_file_exits_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error:")


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path / "nowhere.json")
    assert result.exit_code == 2 and "no such file" in result.stderr
