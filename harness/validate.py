"""Checks a results file: its schema, then every digest, metric, verdict and summary figure recomputed from
the raw observations and throughput runs. Each mismatch names the field."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bi_bench.harness.checks import CHECKS
from bi_bench.harness.metrics import case_metrics, verdict
from bi_bench.harness.observations import group_digests
from bi_bench.harness.results import CaseResult, ResultsFile, read_json
from bi_bench.harness.summary import summarize
from bi_bench.harness.throughput import from_runs
from bi_bench.harness.yaml_source import dotted


def validate_file(path: Path) -> list[str]:
    """The problems found, each `field: recorded X, recomputed Y`; an unreadable file raises instead."""
    data = read_json(path)
    try:
        results = ResultsFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        other_schema = [e for e in errors if e["loc"] == ("schema_version",)]  # its other fields mean other things
        return [f"{dotted(e['loc']) or 'file'}: {e['msg']}" for e in other_schema or errors]
    return recompute(results)


def recompute(results: ResultsFile) -> list[str]:
    problems = []
    ids = [case.id for case in results.cases]
    if len(set(ids)) != len(ids):
        problems.append("cases: a case id appears twice")
    for index, case in enumerate(results.cases):
        problems += _case_problems(case, f"cases[{index}]")
    summary = summarize(results.cases, results.model.synthetic_weights, complete=results.suite.shard is None)
    problems += differences(results.summary.model_dump(), summary.model_dump(), "summary")
    t = results.throughput
    try:
        expected = from_runs(t.prompts, t.max_tokens, t.runs)
    except ZeroDivisionError:
        return [*problems, "throughput.runs: a setting has no tokens or no time"]
    except ValueError as exc:
        return [*problems, f"throughput.runs: {exc}"]
    return problems + differences(t.model_dump(), expected.model_dump(), "throughput")


def _case_problems(case: CaseResult, where: str) -> list[str]:
    problems = []
    if case.check not in CHECKS:
        return [f"{where}.check: unknown check {case.check!r}"]
    own = case.params.get("control")
    control = CHECKS[case.check].control if own is None else own
    problems += differences(case.control, control, f"{where}.control")
    digests = [group_digests(g).model_dump() for g in case.observations]
    problems += differences([d.model_dump() for d in case.digests], digests, f"{where}.digests")
    if not case.observations:
        if case.verdict != "skipped" or case.metrics is not None:
            problems.append(f"{where}.observations: none recorded, so verdict must be skipped and metrics null")
        elif not case.reason:
            problems.append(f"{where}.reason: a skipped case needs a reason")
        return problems
    metrics = case_metrics(case.observations)
    recorded = case.metrics.model_dump() if case.metrics else None
    problems += differences(recorded, metrics.model_dump(), f"{where}.metrics")
    problems += differences(case.verdict, verdict(metrics, CHECKS[case.check].claims(case.mode)), f"{where}.verdict")
    return problems


def differences(recorded: Any, expected: Any, where: str) -> list[str]:
    """Leaf-by-leaf comparison; floats must match exactly (NaN matches NaN)."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        keys = list(dict.fromkeys([*recorded, *expected]))
        return [p for key in keys
                for p in differences(recorded.get(key), expected.get(key), f"{where}.{key}")]
    if isinstance(recorded, list) and isinstance(expected, list) and len(recorded) == len(expected):
        return [p for i, (a, b) in enumerate(zip(recorded, expected)) for p in differences(a, b, f"{where}[{i}]")]
    if _same(recorded, expected):
        return []
    return [f"{where}: recorded {_short(recorded)}, recomputed {_short(expected)}"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
