"""`bi-bench reproduce`: a results file's invariant-mode cases (or a sample) run again here, every digest compared.

`validate` proves that a file agrees with itself and with the suite it carries; only running its cases again
shows that its observations are what this engine, suite and model produce.
"""
from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from bi_bench.harness.results.base import differences
from bi_bench.harness.results.file import CaseResult, Environment, ModelRecord, ResultsFile
from bi_bench.harness.results.metrics import NOT_RUN
from bi_bench.harness.results.observations import sha256
from bi_bench.harness.results.reproduction import ReproducedCase, ReproductionFile, outcome, reproducible
from bi_bench.harness.run.environment import environment
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.run.runner import Reporter, now, run_cases
from bi_bench.harness.suite.prompts import PromptSource
from bi_bench.harness.suite.recorded import RecordedSuite, recorded_suite

MODEL_FIELDS = ("dtype", "weights_sha256", "architecture", "params_count", "synthetic_weights", "lm_head_fp32")


@dataclass(frozen=True)
class Selection:
    pattern: str | None = None  # fnmatch pattern on case ids
    sample: int | None = None  # this many of the matching cases, drawn at random

    def __str__(self) -> str:
        given = [f"--cases {self.pattern}" if self.pattern else "", f"--sample {self.sample}" if self.sample else ""]
        return " ".join(part for part in given if part) or "every invariant-mode case"

    def cases(self, results: ResultsFile) -> list[CaseResult]:
        """Drawn with the system's randomness: whoever made the file cannot know which cases will be re-run."""
        chosen = [case for case in results.cases
                  if reproducible(case) and (self.pattern is None or fnmatch.fnmatchcase(case.id, self.pattern))]
        if not chosen:
            raise ValueError(f"no invariant-mode case that ran matches --cases {self.pattern}" if self.pattern
                             else "the file has no invariant-mode case that ran")
        if self.sample is not None and self.sample < len(chosen):
            drawn = set(random.SystemRandom().sample(range(len(chosen)), self.sample))
            chosen = [case for i, case in enumerate(chosen) if i in drawn]
        return chosen


@dataclass(frozen=True)
class Plan:
    """What a reproduction runs, checked to be runnable here before any case starts."""

    path: Path
    results: ResultsFile
    selection: Selection
    recorded: RecordedSuite
    cases: list[CaseResult]
    pool: EnginePool
    prompts: PromptSource
    environment: Environment  # here

    @property
    def package_differences(self) -> list[str]:
        """One line per package that can change bits and has another version here than in the file."""
        return differences(self.results.environment.package_versions, self.environment.package_versions,
                           "environment.packages", "here")


def plan(path: Path, results: ResultsFile, selection: Selection) -> Plan:
    """ValueError when the cases cannot run on this machine: another device type, or the model is not here."""
    recorded = recorded_suite(results)
    device = recorded.loaded.suite.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{path}: recorded on cuda, and this machine has no CUDA device: cannot reproduce it here")
    cases = selection.cases(results)
    pool = EnginePool(recorded.model, device)
    source, record = pool.backend.describe(pool)
    _same_model(record, results.model, path)
    return Plan(path, results, selection, recorded, cases, pool, PromptSource(recorded.loaded.suite.workload, source),
                environment(device))


def reproduce(planned: Plan, command: list[str], reporter: Reporter) -> ReproductionFile:
    results, loaded = planned.results, planned.recorded.loaded
    specs = {spec.index: spec for spec in planned.recorded.cases}
    started = now()
    reporter.model_started(f"reproducing {results.model.id} ({results.model.dtype})", len(planned.cases), 0)
    try:
        results_here = run_cases([specs[case.index] for case in planned.cases], planned.pool, loaded, planned.prompts,
                                 reporter)
        # the run's results first: the last case is reported finished when they run out
        reproduced = [_compared(case, result) for result, case in zip(results_here, planned.cases)]
    finally:
        planned.pool.close()
    return ReproductionFile(run_id=results.run_id, results_file=planned.path.name,
                            results_sha256=sha256(planned.path.read_bytes()), command=command,
                            selection=str(planned.selection), started_at=started, finished_at=now(),
                            environment=planned.environment, cases=reproduced,
                            reproduced=all(c.outcome == "reproduced" for c in reproduced))


def _compared(recorded: CaseResult, result: CaseResult) -> ReproducedCase:
    if result.verdict in NOT_RUN:
        return ReproducedCase(index=recorded.index, id=recorded.id, outcome="skipped", reason=result.reason, digests=[])
    found, reason = outcome(recorded, result.digests)
    return ReproducedCase(index=recorded.index, id=recorded.id, outcome=found, reason=reason, digests=result.digests)


def _same_model(here: ModelRecord, recorded: ModelRecord, path: Path) -> None:
    found = differences(recorded.model_dump(include=set(MODEL_FIELDS)), here.model_dump(include=set(MODEL_FIELDS)),
                        "model", "this machine loads")
    if found:
        raise ValueError(f"{path}: {found[0]}: cannot reproduce it here")
