"""What changed between two results files: identity, environment, verdicts, bits and throughput."""
from __future__ import annotations

from dataclasses import dataclass

from bi_bench.harness.results.file import CaseResult, ResultsFile

FIELDS = ("suite.name", "suite.sha256", "suite.shard", "suite.quick", "model.id", "model.dtype", "model.revision",
          "model.weights_sha256", "environment.hardware", "environment.cpu_isa", "environment.cpu_capability",
          "environment.torch_threads", "environment.torch", "environment.triton",
          "environment.transformers", "environment.bi_bench", "environment.git_commit", "environment.git_dirty",
          "backend.label", "backend.version")


@dataclass(frozen=True)
class CaseChange:
    id: str
    verdict: tuple[str, str]
    same_bits: bool
    max_abs_dlogprob: tuple[float | None, float | None]


@dataclass(frozen=True)
class Changes:
    fields: list[tuple[str, object, object]]
    cases: list[CaseChange]  # cases in both files whose verdict or observed bits differ
    unchanged: int
    only_a: list[str]
    only_b: list[str]


def changes(a: ResultsFile, b: ResultsFile) -> Changes:
    fields = [(f, a.field(f), b.field(f)) for f in FIELDS if a.field(f) != b.field(f)]
    cases_a, cases_b = {c.id: c for c in a.cases}, {c.id: c for c in b.cases}
    common = [cid for cid in cases_a if cid in cases_b]
    changed = [_case_change(cases_a[cid], cases_b[cid]) for cid in common]
    changed = [c for c in changed if c.verdict[0] != c.verdict[1] or not c.same_bits]
    return Changes(fields, changed, len(common) - len(changed), [cid for cid in cases_a if cid not in cases_b],
                   [cid for cid in cases_b if cid not in cases_a])


def _case_change(a: CaseResult, b: CaseResult) -> CaseChange:
    def dmax(case: CaseResult) -> float | None:
        return case.metrics.max_abs_dlogprob if case.metrics else None

    return CaseChange(a.id, (a.verdict, b.verdict), a.digests == b.digests, (dmax(a), dmax(b)))
