"""What a person sees: progress while a suite runs, then a summary table per results file."""
from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from bi_bench.harness.results.file import CaseResult, ModeThroughput, ResultsFile, overrides_text
from bi_bench.harness.results.metrics import VERDICT_STYLES
from bi_bench.harness.suite.matrix import CaseSpec
from bi_bench.harness.verify.compare import changes

QUIET = ("skipped", "not_applicable")  # listed by reason under the table, not in it


class ProgressReporter:
    """Case n/m, tokens/s and ETA on stderr (rich draws nothing when stderr is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.task = None
        self.tokens = 0
        self.seconds = 0.0

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def model_started(self, model: str, total: int, done: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(model, total=total, completed=done, rate="")
        self.progress.console.print(f"{model}: {total} cases" + (f", {done} from the journal" if done else ""))

    def case_started(self, case: CaseSpec) -> None:
        self.progress.update(self.task, description=case.id)

    def case_finished(self, case: CaseResult, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds
        self.progress.update(self.task, advance=1, rate=f"{self.tokens / max(self.seconds, 1e-9):.0f} tok/s")

    def throughput_started(self) -> None:
        self.progress.update(self.task, description="throughput: every setting, interleaved")


def summary_table(path: Path, results: ResultsFile) -> Table:
    model, env = results.model, results.environment
    table = Table(title=f"{model.id} ({model.dtype}) on {env.hardware}", caption=str(path), title_justify="left")
    for column in ("check", "mode", "TP", "kernels", "verdict", "max |Δ logprob|", "first divergence"):
        table.add_column(column, no_wrap=column in ("check", "verdict"))
    for case in results.cases:
        if case.verdict in QUIET:
            continue
        verdict = case.verdict + (" (control)" if case.is_control else "")
        table.add_row(case.check, case.mode, str(case.tp), kernels_text(case.kernel_overrides),
                      f"[{VERDICT_STYLES[case.verdict].terminal}]{verdict}[/]", _dlogprob(case), _divergence(case))
    return table


def throughput_table(results: ResultsFile) -> Table:
    t = results.throughput
    table = Table(title=f"throughput ({t.prompts} prompts x {t.max_tokens} tokens)", title_justify="left")
    for column in ("mode", "TP", "kernels", "tok/s", "overhead vs default at its TP"):
        table.add_column(column)
    for s in t.settings:
        table.add_row(s.mode, str(s.tp), kernels_text(s.kernel_overrides), f"{s.tokens_per_s:.1f}",
                      times(s.overhead))
    for label, reason in (t.not_run or {}).items():
        table.add_row(*label.split("/", 2)[:2], "", "-", reason)
    return table


def rate(figure: ModeThroughput | None) -> str:
    return "-" if figure is None else f"{figure.tokens_per_s:.1f}"


def times(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def kernels_text(overrides: dict[str, str]) -> str:
    return overrides_text(overrides) or "mode's picks"


def _dlogprob(case: CaseResult) -> str:
    if case.metrics is None:
        return "-"
    value = case.metrics.max_abs_dlogprob
    return "0" if value == 0 else (f"{value:.3g}" if math.isfinite(value) else str(value))


def _divergence(case: CaseResult) -> str:
    if case.metrics is None or case.metrics.first_divergence is None:
        return "none"
    return f"token {case.metrics.first_divergence} ({case.metrics.first_divergence_at})"


def _quiet_by_reason(cases: list[CaseResult]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for case in cases:
        if case.verdict in QUIET:
            grouped.setdefault((case.verdict, case.reason or "no reason given"), []).append(case.id)
    return grouped


def wide_console(stderr: bool = False) -> Console:
    """Rich assumes 80 columns when output is not a terminal; the summary table needs more."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


def print_summary(console: Console, path: Path, results: ResultsFile) -> None:
    console.print(summary_table(path, results))
    for (verdict, reason), ids in _quiet_by_reason(results.cases).items():
        console.print(f"[dim]{verdict} {len(ids)}: {reason} ({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})[/]")
    s = results.summary
    console.print(f"claims held {s.claims_held}/{s.claims}, controls diverged {s.controls_diverged}/{s.controls}"
                  + f", skipped {s.verdicts['skipped']}; validated: {s.validated}"
                  + (" (synthetic weights)" if results.model.synthetic_weights else ""))
    console.print(throughput_table(results))
    t = results.throughput
    console.print(f"throughput: default {rate(t.default)} tok/s, invariant {rate(t.invariant)} tok/s: invariant mode "
                  f"costs {times(t.overhead)}")
    if s.no_control_diverged:
        console.print(Panel("[bold red]NO NEGATIVE CONTROL DIVERGED[/]: default mode gave the same bits in every "
                            "setting, so these checks have not shown they can fail on this model and hardware.",
                            border_style="red"))
    console.print(f"[bold {'green' if s.ok else 'red'}]{'OK' if s.ok else 'FAILED'}[/]: {path}")


def print_changes(console: Console, a: ResultsFile, b: ResultsFile) -> None:
    """`bi-bench compare`: what changed from A to B."""
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
