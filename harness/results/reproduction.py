"""A reproduction: a results file's invariant-mode cases run again on some machine, every digest compared.

It lies beside the results file as `<run-id>.reproduced-<hardware>.json` and names that file's sha256, so it
speaks for those exact bytes only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bi_bench.harness.results.base import differences
from bi_bench.harness.results.base import Record
from bi_bench.harness.results.file import CaseResult, Environment, ResultsFile, SchemaVersion, SCHEMA_VERSION
from bi_bench.harness.results.metrics import NOT_RUN
from bi_bench.harness.results.observations import GroupDigests
from bi_bench.kernels.registry import INVARIANT_MODES

INFIX = ".reproduced-"
Outcome = Literal["reproduced", "differs", "skipped"]


class ReproducedCase(Record):
    index: int
    id: str
    outcome: Outcome
    reason: str | None = None  # the first digest that differs, or why the case could not run here
    digests: list[GroupDigests]  # what this machine got


class ReproductionFile(Record):
    schema_version: SchemaVersion = SCHEMA_VERSION
    run_id: str
    results_file: str = Field(pattern=r"^[^/\\]+\.json$")  # the results file's name, in the same folder
    results_sha256: str
    command: list[str]
    selection: str  # which cases were asked for, e.g. "--sample 2"
    started_at: str
    finished_at: str
    environment: Environment
    cases: list[ReproducedCase] = Field(min_length=1)
    reproduced: bool  # every case reproduced


def is_reproduction(path: Path) -> bool:
    return INFIX in path.name


def reproduction_path(results_path: Path, hardware: str) -> Path:
    return results_path.with_name(f"{results_path.stem}{INFIX}{hardware}.json")


def reproducible(case: CaseResult) -> bool:
    """Invariant-mode cases that ran: their bits are claimed to depend on nothing but the suite and the model."""
    return case.mode in INVARIANT_MODES and case.verdict not in NOT_RUN


def outcome(recorded: CaseResult, digests: list[GroupDigests]) -> tuple[Outcome, str | None]:
    """Reproduced when every digest is the recorded one; else the first that differs."""
    found = differences([d.model_dump() for d in recorded.digests], [d.model_dump() for d in digests],
                        "digests", "reproduced")
    return ("differs", found[0]) if found else ("reproduced", None)


def reproduction_problems(reproduction: ReproductionFile, results: ResultsFile) -> list[str]:
    """Its outcomes recomputed from its digests against the results file's."""
    problems = differences(reproduction.run_id, results.run_id, "run_id", "the results file has")
    problems += differences(reproduction.environment.device, results.environment.device, "environment.device",
                            "the results file has")
    by_index = {case.index: case for case in results.cases}
    for i, case in enumerate(reproduction.cases):
        recorded = by_index.get(case.index)
        if recorded is None or recorded.id != case.id or not reproducible(recorded):
            problems.append(f"cases[{i}]: {case.id!r} (index {case.index}) is not an invariant-mode case of "
                            f"{reproduction.results_file} that ran")
        elif case.outcome == "skipped":
            if case.digests or not case.reason:
                problems.append(f"cases[{i}]: a skipped case has a reason and no digests")
        else:
            expected, reason = outcome(recorded, case.digests)
            problems += differences(case.outcome, expected, f"cases[{i}].outcome ({case.id})")
            problems += differences(case.reason, reason, f"cases[{i}].reason ({case.id})")
    if len({case.index for case in reproduction.cases}) != len(reproduction.cases):
        problems.append("cases: a case appears twice")
    everything = all(case.outcome == "reproduced" for case in reproduction.cases)
    return problems + differences(reproduction.reproduced, everything, "reproduced")
