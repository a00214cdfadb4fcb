"""What changed between two results files: identity, environment, verdicts, bits and throughput."""
from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bi_bench.harness.cli.report import rate, times
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


def render(console: Console, a: ResultsFile, b: ResultsFile) -> None:
    found = changes(a, b)
    if found.fields:
        table = Table(title="run identity and environment")
        for column in ("field", "A", "B"):
            table.add_column(column)
        for name, value_a, value_b in found.fields:
            table.add_row(name, str(value_a), str(value_b))
        console.print(table)
    if found.cases:
        table = Table(title="cases whose verdict or bits changed")
        for column in ("case", "verdict A", "verdict B", "same bits", "max |Δ| A", "max |Δ| B"):
            table.add_column(column)
        for c in found.cases:
            table.add_row(c.id, *c.verdict, str(c.same_bits), *(str(v) for v in c.max_abs_dlogprob))
        console.print(table)
    console.print(f"{found.unchanged} cases unchanged (same verdict, same bits); "
                  f"{len(found.cases)} changed; only in A: {len(found.only_a)}; only in B: {len(found.only_b)}")
    for label, ids in (("only in A", found.only_a), ("only in B", found.only_b)):
        if ids:
            console.print(f"{label}: {', '.join(ids)}")
    ta, tb = a.throughput, b.throughput
    console.print(f"throughput (tok/s) default {rate(ta.default)} -> {rate(tb.default)}, "
                  f"invariant {rate(ta.invariant)} -> {rate(tb.invariant)}, "
                  f"overhead {times(ta.overhead)} -> {times(tb.overhead)}")
