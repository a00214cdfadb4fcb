"""What a careful forger does after editing a results file: recompute every digest, metric, verdict and the
summary, so that `validate`'s recomputation from the observations agrees with the edit."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bi_bench.harness.checks import CHECKS
from bi_bench.harness.results.file import CaseResult, ResultsFile, load_results, save
from bi_bench.harness.results.metrics import case_metrics, verdict
from bi_bench.harness.results.observations import Group, group_digests
from bi_bench.harness.results.summary import summarize


def recomputed(case: CaseResult) -> CaseResult:
    if not case.observations:
        return case
    metrics = case_metrics(case.observations)
    return case.model_copy(update={"metrics": metrics, "digests": [group_digests(g) for g in case.observations],
                                   "verdict": verdict(metrics, CHECKS[case.check].claims(case.mode))})


def consistent(results: ResultsFile, cases: list[CaseResult]) -> ResultsFile:
    cases = [recomputed(case) for case in cases]
    summary = summarize(cases, results.model.synthetic_weights, complete=results.suite.shard is None)
    return results.model_copy(update={"cases": cases, "summary": summary})


def forge(path: Path, change: Callable[[list[CaseResult]], list[CaseResult]]) -> Path:
    """Rewrites the file at `path` with `change` applied to its cases, everything else made to agree."""
    results = load_results(path)
    save(path, consistent(results, change(list(results.cases))))
    return path


def replaced(cases: list[CaseResult], index: int, **update: Any) -> list[CaseResult]:
    return [case.model_copy(update=update) if i == index else case for i, case in enumerate(cases)]


def with_group(case: CaseResult, **update: Any) -> dict[str, list[Group]]:
    return {"observations": [case.observations[0].model_copy(update=update), *case.observations[1:]]}
