"""What a page shows of a run, derived from its cases: badges, headline figures and the plotly figures."""
from __future__ import annotations

import html
import math
from collections import Counter
from typing import Any

import plotly.graph_objects as go
import plotly.offline

from bi_bench.harness.results.file import CaseResult, ResultsFile, SettingThroughput, overrides_text
from bi_bench.harness.results.metrics import NOT_RUN, VERDICT_STYLES, VERDICTS, Metrics, compare
from bi_bench.harness.results.summary import shortfalls
from bi_bench.harness.site.load import Run


MODE_COLOURS = {"default": "#e16f24", "invariant": "#0969da", "tp-invariant": "#8250df"}

def check_badge(cases: list[CaseResult], check: str) -> str | None:
    """The check's invariance claims in one word: engine_error or fail if any, pass if any held, else why not."""
    verdicts = {c.verdict for c in cases if c.check == check}
    return next((word for word in ("engine_error", "fail", "pass", "skipped", "not_applicable") if word in verdicts),
                None)


def checks_of(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(case.check for run in runs for case in run.results.cases))


def tp_degrees(results: ResultsFile) -> list[int]:
    return sorted({c.tp for c in results.cases if c.verdict not in NOT_RUN})


def default_metrics(results: ResultsFile, check: str | None = None) -> list[Metrics]:
    return [c.metrics for c in results.cases
            if c.mode == "default" and c.metrics is not None and check in (None, c.check)]


def max_dlogprob(results: ResultsFile) -> float | None:
    return max((m.max_abs_dlogprob for m in default_metrics(results)), default=None)


def unique_completions(results: ResultsFile) -> int | None:
    return max((m.distinct_completions for m in default_metrics(results, "unique_completions")), default=None)


def not_validated_because(results: ResultsFile) -> list[str]:
    """Synthetic weights go unsaid: every page that shows these reasons marks synthetic runs on its own."""
    reasons = [f"one shard: {results.suite.shard}" if reason == "one shard" else reason
               for reason in shortfalls(results.summary, complete=results.suite.shard is None)]
    failed = next((c for c in results.cases if c.verdict in ("fail", "engine_error")), None)
    if failed is not None:
        reasons.insert(0, f"first failed check: {failed.id} ({failed.verdict}"
                          + (f": {failed.reason})" if failed.reason else ")"))
    return reasons


def kernels_label(results: ResultsFile) -> str:
    overrides = {op: name for c in results.cases if c.verdict not in NOT_RUN for op, name in c.kernel_overrides.items()}
    return overrides_text(overrides) or "each mode's kernels"


# --- plotly figures -----------------------------------------------------------------------------------------

def plot_text(text: str) -> str:
    """Plotly reads <b>, <br>, <a href> in labels as markup: entities make results-file text show literally."""
    return html.escape(text, quote=False)


def figure_json(figure: go.Figure) -> str:
    return figure.to_json(validate=False)


def base_layout(title: str, **extra: Any) -> dict[str, Any]:
    # A plain style instead of a named template: applying plotly's templates costs most of a build.
    axis = dict(gridcolor="#eaeef2", zerolinecolor="#d1d9e0", linecolor="#d1d9e0", automargin=True)
    layout = dict(title=dict(text=title, x=0, font=dict(size=14, color="#1f2328")), template="none",
                  paper_bgcolor="#fff", plot_bgcolor="#fff", margin=dict(l=60, r=20, t=50, b=60),
                  font=dict(family="system-ui, sans-serif", size=12, color="#1f2328"), xaxis=dict(axis),
                  yaxis=dict(axis))
    for key, value in extra.items():
        layout[key] = {**layout[key], **value} if isinstance(value, dict) and key in layout else value
    return layout


def matrix_column(case: CaseResult) -> str:
    overrides = overrides_text(case.kernel_overrides)
    return plot_text(f"{case.mode} · TP {case.tp}" + (f" · {overrides}" if overrides else ""))


def invariance_matrix(results: ResultsFile) -> go.Figure:
    checks = list(dict.fromkeys(c.check for c in results.cases))
    columns = list(dict.fromkeys(matrix_column(c) for c in results.cases))
    z: list[list[int | None]] = [[None] * len(columns) for _ in checks]
    text: list[list[str]] = [[""] * len(columns) for _ in checks]
    for case in results.cases:
        row, col = checks.index(case.check), columns.index(matrix_column(case))
        z[row][col] = VERDICTS.index(case.verdict)
        text[row][col] = case.verdict + (" (control)" if case.is_control else "")
    scale = [[i / (len(VERDICTS) - 1), colour] for i, colour in enumerate(VERDICT_STYLES[v].fill for v in VERDICTS)]
    heatmap = go.Heatmap(z=z, x=columns, y=[plot_text(c) for c in checks], text=text, texttemplate="%{text}",
                         colorscale=scale, zmin=0, zmax=len(VERDICTS) - 1, showscale=False, xgap=2, ygap=2,
                         hovertemplate="%{y} / %{x}: %{text}<extra></extra>")
    layout = base_layout("", height=60 + 34 * len(checks), yaxis=dict(autorange="reversed"), xaxis=dict(side="top"))
    layout["margin"].update(t=40, b=10)
    return go.Figure(heatmap, layout)


def comparisons(case: CaseResult) -> list[tuple[int | None, list[float]]]:
    """(first divergence, reference minus candidate logprobs over the agreeing prefix) per candidate."""
    found = []
    for group in case.observations:
        for candidate in group.candidates:
            result = compare(group.reference, candidate.observation)
            found.append((result.first_divergence, result.dlogprobs))
    return found


def max_abs_by_position(case: CaseResult) -> dict[int, float]:
    found: dict[int, float] = {}
    for _, dlogprobs in comparisons(case):
        for position, delta in enumerate(dlogprobs):
            found[position] = max(found.get(position, 0.0), abs(delta))
    return found


def dlogprob_by_position(results: ResultsFile) -> tuple[go.Figure, list[str]]:
    """The figure (a line per case, log scale) and the cases that were zero at every position."""
    figure, identical = go.Figure(), []
    for case in results.cases:
        by_position = max_abs_by_position(case)
        name = f"{case.check} ({case.mode}, TP {case.tp})"
        if by_position and not any(by_position.values()):
            identical.append(name)
        elif by_position:
            positions = sorted(by_position)
            figure.add_scatter(x=positions, y=[by_position[p] or None for p in positions], name=plot_text(name),
                               mode="lines+markers")
    longest = max((len(trace.x) for trace in figure.data), default=1)
    figure.update_layout(base_layout("max |Δ logprob| by token position, where tokens still agree", height=380,
                                     xaxis=dict(title="token position", tick0=0, dtick=max(1, math.ceil(longest / 12))),
                                     yaxis=dict(title="max |Δ logprob|", type="log", exponentformat="e")))
    return figure, identical


def first_divergence_histogram(results: ResultsFile) -> go.Figure:
    counts: dict[str, Counter[str]] = {}
    for case in results.cases:
        for first, _ in comparisons(case):
            counts.setdefault(case.mode, Counter())["never" if first is None else str(first)] += 1
    positions = sorted({p for c in counts.values() for p in c if p != "never"}, key=int) + ["never"]
    figure = go.Figure([go.Bar(name=plot_text(mode), x=positions, y=[counter[p] for p in positions],
                               marker_color=MODE_COLOURS.get(mode)) for mode, counter in counts.items()])
    figure.update_layout(base_layout("First divergence: token position where each candidate left its reference",
                                     barmode="group", height=340, xaxis=dict(title="token position", type="category"),
                                     yaxis=dict(title="candidates")))
    return figure


def throughput_label(run: Run) -> str:
    results = run.results
    tps = ", ".join(map(str, tp_degrees(results))) or "-"
    parts = (results.run_id, f"{results.environment.hardware} · TP {tps}", kernels_label(results))
    return "<br>".join(plot_text(part) for part in parts)


def throughput_bars(runs: list[Run]) -> go.Figure:
    labels = [throughput_label(run) for run in runs]
    figure = go.Figure()
    for mode in ("default", "invariant"):
        speeds = [m.tokens_per_s if (m := getattr(run.results.throughput, mode)) else None for run in runs]
        text = [f"{overhead:.2f}× slower" if mode == "invariant" and (overhead := run.results.throughput.overhead)
                else "" for run in runs]
        figure.add_bar(name=mode, x=labels, y=speeds, text=text, textposition="outside",
                       marker_color=MODE_COLOURS[mode])
    figure.update_layout(base_layout("Throughput by run: hardware, TP degrees, kernel variants", barmode="group",
                                     height=420, yaxis=dict(title="tokens/s")))
    figure.update_layout(margin=dict(b=110))
    return figure


def setting_column(setting: SettingThroughput) -> str:
    return plot_text(f"TP {setting.tp} · {overrides_text(setting.kernel_overrides) or 'own kernels'}")


def throughput_by_setting(results: ResultsFile) -> go.Figure:
    """Tokens/s per TP degree and kernel variants, a bar per mode, labelled with the overhead against default mode
    at the same TP degree with its own kernels."""
    settings = results.throughput.settings
    columns = list(dict.fromkeys(setting_column(s) for s in settings))
    figure = go.Figure()
    for mode in dict.fromkeys(s.mode for s in settings):
        of_mode = [s for s in settings if s.mode == mode]
        figure.add_bar(name=plot_text(mode), x=[setting_column(s) for s in of_mode],
                       y=[s.tokens_per_s for s in of_mode], text=[f"{s.overhead:.2f}×" if s.overhead else "" for s in of_mode],
                       textposition="outside", marker_color=MODE_COLOURS.get(mode),
                       hovertemplate="%{x}: %{y:.1f} tokens/s, %{text} the time of default mode at this TP"
                                     "<extra>%{fullData.name}</extra>")
    figure.update_layout(base_layout("Throughput by TP degree and kernel variants (label: time relative to default "
                                     "mode at the same TP)", barmode="group", height=420,
                                     xaxis=dict(type="category", categoryorder="array", categoryarray=columns),
                                     yaxis=dict(title="tokens/s")))
    return figure
