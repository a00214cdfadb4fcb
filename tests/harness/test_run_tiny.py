"""The tiny suite end to end: invariant mode holds, default-mode controls diverge, the file validates."""
from __future__ import annotations

from pathlib import Path

from conftest import invoke, load


def test_tiny_suite_exits_zero(tiny_run: tuple[int, Path]) -> None:
    exit_code, path = tiny_run
    assert exit_code == 0
    assert load(path)["summary"]["ok"] is True


def test_invariant_cases_pass(tiny_run: tuple[int, Path]) -> None:
    cases = load(tiny_run[1])["cases"]
    ran = [c for c in cases if c["mode"] == "invariant" and c["verdict"] != "skipped"]
    assert {c["check"] for c in ran} == {"batch_size", "order", "prefix_cache", "chunked_prefill", "prefill_decode",
                                         "preemption", "repeat", "unique_completions", "trainer_parity",
                                         "threads"}
    assert all(c["verdict"] == "pass" and c["metrics"]["distinct_completions"] == 1 for c in ran)


def test_default_mode_controls_diverge(tiny_run: tuple[int, Path]) -> None:
    cases = load(tiny_run[1])["cases"]
    controls = [c for c in cases if c["mode"] == "default" and c["control"] and c["verdict"] != "skipped"]
    assert len(controls) >= 5
    assert all(c["verdict"] == "diverged" and c["metrics"]["max_abs_dlogprob"] > 0 for c in controls)


def test_nothing_is_skipped(tiny_run: tuple[int, Path]) -> None:
    assert [c["id"] for c in load(tiny_run[1])["cases"] if c["verdict"] == "skipped"] == []


def test_results_file_records_run(tiny_run: tuple[int, Path]) -> None:
    data = load(tiny_run[1])
    assert data["model"]["synthetic_weights"] is True and data["summary"]["validated"] is False
    assert data["suite"]["sha256"] and data["suite"]["config"]["checks"]["batch_size"]["batch_sizes"] == [1, 3, 12]
    throughput = data["throughput"]
    assert throughput["default"]["tokens_per_s"] > 0 and throughput["invariant"]["tokens_per_s"] > 0
    assert [r["mode"] for r in throughput["runs"]] == ["default", "invariant"]
    assert [(s["mode"], s["tp"], s["kernel_overrides"]) for s in throughput["settings"]] == [
        ("default", 1, {}), ("invariant", 1, {})]
    assert throughput["settings"][1]["overhead"] == throughput["overhead"]
    assert data["model"]["lm_head_fp32"] is data["suite"]["config"]["models"][0]["lm_head_fp32"] is False
    assert data["environment"]["cuda"] is None and data["environment"]["nvidia_driver"] is None  # a CPU run
    case = next(c for c in data["cases"] if c["id"] == "batch_size/invariant/tp1")
    assert case["kernels"]["matmul"] == "cpu_canonical"


def test_validate_accepts(tiny_run: tuple[int, Path]) -> None:
    result = invoke("validate", tiny_run[1])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
