"""The static leaderboard site: results files in, HTML pages (jinja2 templates, plotly figures) out.

Every file is validated the way `bi-bench validate` does it before anything of it is shown: a file with any
problem is rejected (listed, with its reason, on a page of its own), so no stored verdict or summary figure
reaches a page unless it equals the one recomputed from the file's observations and suite.

Pages link to each other and to their assets by relative paths, so the site works from file:// and from any
URL prefix (GitHub Pages serves it under /<repo>/). Every string from a results file is data: templates
autoescape it, and figures travel in autoescaped data- attributes, never inside a <script>.
"""
from __future__ import annotations

import csv
import html
import json
import math
import shlex
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bi_bench.harness.results.metrics import NOT_RUN, Metrics, compare
from bi_bench.harness.suite.packaged import site_folder
from bi_bench.harness.verify.reproduction import INFIX, ReproductionFile, is_reproduction
from bi_bench.harness.results.file import (CaseResult, ResultsFile, SettingThroughput, load_results, overrides_text,
                                      read_json, slug)
from bi_bench.harness.verify.validate import problems_of, validate_file
from bi_bench.harness.suite.schema import DEFAULT_BACKEND, model_label

MARKER = ".bi-bench-site"  # marks a folder this module built, so a rebuild may empty it
VERDICTS = ("pass", "fail", "diverged", "equal", "skipped", "not_applicable", "engine_error")
VERDICT_COLOURS = ("#1a7f37", "#cf222e", "#bf8700", "#0969da", "#afb8c1", "#d0d7de", "#82071e")
MODE_COLOURS = {"default": "#e16f24", "invariant": "#0969da", "tp-invariant": "#8250df"}
CASE_COLUMNS = ("id", "check", "mode", "tp", "control", "verdict", "reason", "kernels", "kernel_overrides", "params")


@dataclass(frozen=True)
class Reproduction:
    source: Path
    file: ReproductionFile
    href: str  # its copy, relative to the site root, beside the run page


@dataclass
class Run:
    source: Path
    results: ResultsFile
    page: str  # the run page, relative to the site root; its JSON and CSV lie beside it
    reproductions: list[Reproduction] = field(default_factory=list)  # valid ones

    @property
    def model_key(self) -> str:
        backend = self.results.backend
        return slug(model_label(self.results.model.id, self.results.model.dtype, backend.label if backend else None))

    @property
    def stem(self) -> str:
        return self.page.removesuffix(".html")

    @property
    def reproduced_on(self) -> list[Reproduction]:
        """Passing reproductions made on hardware other than the run's own."""
        return [r for r in self.reproductions
                if r.file.reproduced and r.file.environment.hardware != self.results.environment.hardware]


@dataclass
class Model:
    key: str
    runs: list[Run]  # newest first

    @property
    def page(self) -> str:
        return f"models/{self.key}.html"

    @property
    def validated_runs(self) -> list[Run]:
        return [run for run in self.runs if run.results.summary.validated]

    @property
    def featured(self) -> Run:
        """The run the leaderboard row and the per-run figures show: the newest validated one, else the newest."""
        return (self.validated_runs or self.runs)[0]

    @property
    def synthetic(self) -> bool:
        return self.featured.results.model.synthetic_weights


@dataclass(frozen=True)
class Rejected:
    path: str  # relative to the results folder
    reason: str  # the first problem validate names, and how many more there are


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def load_all(results_dir: Path) -> Loaded:
    loaded = Loaded()
    paths = sorted(results_dir.rglob("*.json"))
    for path in (p for p in paths if not is_reproduction(p)):
        results, problems = validated_results(path)
        if problems:
            loaded.rejected.append(rejected(results_dir, path, problems))
            continue
        relative = path.relative_to(results_dir).with_suffix("")
        loaded.runs.append(Run(path, results, "runs/" + "/".join(slug(part) for part in relative.parts) + ".html"))
    runs = {run.source: run for run in loaded.runs}
    for path in (p for p in paths if is_reproduction(p)):
        try:
            problems = validate_file(path)
        except (OSError, ValueError) as exc:
            problems = [unreadable(path, exc)]
        if problems:
            loaded.rejected.append(rejected(results_dir, path, problems))
        else:
            attach(path, runs)
    return loaded


def validated_results(path: Path) -> tuple[ResultsFile | None, list[str]]:
    try:
        results = load_results(path)
    except (OSError, ValueError) as exc:
        return None, [unreadable(path, exc)]
    return results, problems_of(results)


def unreadable(path: Path, exc: Exception) -> str:
    return str(exc).removeprefix(f"{path}: ")


def attach(path: Path, runs: dict[Path, Run]) -> None:
    """A valid reproduction joins the run of the results file it names (valid too, so loaded)."""
    file = ReproductionFile.model_validate(read_json(path))
    run = runs[path.with_name(file.results_file)]
    run.reproductions.append(Reproduction(path, file, f"{run.stem}{INFIX}{slug(file.environment.hardware)}.json"))


def rejected(results_dir: Path, path: Path, problems: list[str]) -> Rejected:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Rejected(str(path.relative_to(results_dir)), problems[0] + more)


def group_models(runs: list[Run]) -> list[Model]:
    models: dict[str, Model] = {}
    for run in sorted(runs, key=lambda r: r.results.finished_at, reverse=True):
        models.setdefault(run.model_key, Model(run.model_key, [])).runs.append(run)
    return sorted(models.values(), key=lambda m: m.key)


# --- figures from one run's cases -------------------------------------------------------------------------

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
    s = results.summary
    reasons = [
        (s.verdicts.get("fail", 0) > 0, f"failed claims: {s.verdicts.get('fail', 0)}"),
        (s.verdicts.get("engine_error", 0) > 0, f"engine errors: {s.verdicts.get('engine_error', 0)}"),
        (s.controls_diverged < s.controls, f"controls diverged: {s.controls_diverged}/{s.controls}"),
        (s.no_control_diverged, "no control diverged"),
        (results.suite.shard is not None, f"one shard: {results.suite.shard}"),
        (s.verdicts.get("skipped", 0) > 0, f"skipped cases: {s.verdicts.get('skipped', 0)}"),
        (s.verdicts.get("not_applicable", 0) > 0, f"not applicable: {s.verdicts.get('not_applicable', 0)}"),
        (s.claims_held == 0, "no claim held"),
    ]
    failed = next((c for c in results.cases if c.verdict in ("fail", "engine_error")), None)
    if failed is not None:
        reasons.insert(0, (True, f"first failed check: {failed.id} ({failed.verdict}"
                                 + (f": {failed.reason})" if failed.reason else ")")))
    return [text for applies, text in reasons if applies]


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
        text[row][col] = case.verdict + (" (control)" if case.mode == "default" and case.control else "")
    scale = [[i / (len(VERDICTS) - 1), colour] for i, colour in enumerate(VERDICT_COLOURS)]
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


# --- pages ----------------------------------------------------------------------------------------------------

def jinja() -> Environment:
    env = Environment(loader=FileSystemLoader(site_folder("templates")), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(sci=format_sci, rate=format_rate, count=format_count, show=format_value,
                       date=lambda text: text[:10])
    return env


def format_sci(value: float | None) -> str:
    if value is None:
        return "—"
    return "0" if value == 0 else (f"{value:.2e}" if math.isfinite(value) else str(value))


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def format_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def format_count(value: int) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def row(model: Model, checks: list[str]) -> dict[str, Any]:
    run = model.featured
    results = run.results
    hardware = dict.fromkeys(r.results.environment.hardware for r in (model.validated_runs or model.runs))
    env = results.environment
    return dict(model=model, run=run, results=results, hardware=list(hardware), tp=tp_degrees(results),
                engine=engine_label(results),
                badges={check: check_badge(results.cases, check) for check in checks},
                max_dlogprob=max_dlogprob(results), unique=unique_completions(results),
                why=not_validated_because(results))


def engine_label(results: ResultsFile) -> str:
    """The engine under test: another engine's label and version, or this bi-bench's version and commit."""
    backend, env = results.backend, results.environment
    if backend is not None and backend.name != DEFAULT_BACKEND:
        return f"{backend.label or backend.name} {backend.version or ''}".strip()
    return f"{env.bi_bench} ({(env.git_commit or 'no git')[:7]}{'+dirty' if env.git_dirty else ''})"


def table(models: list[Model]) -> dict[str, Any]:
    checks = checks_of([m.featured for m in models])
    return dict(checks=checks, rows=[row(m, checks) for m in models])


def index_context(models: list[Model], rejected: list[Rejected]) -> dict[str, Any]:
    real = [m for m in models if not m.synthetic]
    return dict(root="", validated=table([m for m in real if m.validated_runs]),
                unvalidated=table([m for m in real if not m.validated_runs]),
                synthetic=table([m for m in models if m.synthetic]), rejected=rejected)


def model_context(model: Model) -> dict[str, Any]:
    featured = model.featured
    dlogprob, identical = dlogprob_by_position(featured.results)
    figures = dict(matrix=invariance_matrix(featured.results), dlogprob=dlogprob,
                   first=first_divergence_histogram(featured.results), settings=throughput_by_setting(featured.results),
                   throughput=throughput_bars(model.runs))
    return dict(root="../", model=model, featured=featured, results=featured.results, identical=identical,
                figures={name: figure_json(f) for name, f in figures.items()},
                runs=[row(Model(model.key, [run]), []) for run in model.runs])


def run_context(run: Run, model: Model) -> dict[str, Any]:
    results = run.results
    return dict(root="../" * run.page.count("/"), run=run, model=model, results=results,
                reproduce=reproduce_lines(results), why=not_validated_because(results), name=Path(run.stem).name)


def reproduce_lines(results: ResultsFile) -> list[str]:
    """Check out the commit, install, run the recorded arguments (argv[0] was whatever path ran bi-bench)."""
    commit = results.environment.git_commit
    checkout = [f"git checkout {shlex.quote(commit)}"] if commit else []
    return [*checkout, "make install", shlex.join([".venv/bin/bi-bench", *results.command[1:]])]


# --- writing ---------------------------------------------------------------------------------------------------

def csv_cell(value: Any) -> Any:
    """Spreadsheets run cells that start with = + - @ as formulas: results-file text must stay text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def pairs(mapping: dict[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in mapping.items())


def case_record(case: CaseResult) -> dict[str, Any]:
    record = dict(id=case.id, check=case.check, mode=case.mode, tp=case.tp, control=case.control,
                  verdict=case.verdict, reason=case.reason or "", kernels=pairs(case.kernels),
                  kernel_overrides=pairs(case.kernel_overrides), params=json.dumps(case.params, sort_keys=True))
    metrics = case.metrics.model_dump() if case.metrics else dict.fromkeys(Metrics.model_fields, "")
    return {key: csv_cell(value) for key, value in {**record, **metrics}.items()}


def write_csv(path: Path, cases: list[CaseResult]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CASE_COLUMNS, *Metrics.model_fields])
        writer.writeheader()
        writer.writerows(case_record(case) for case in cases)


def prepare(out: Path) -> None:
    """An empty output folder; one with files in it only if an earlier build left its marker there."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(f"{out}: not empty and not a bi-bench site build; pass an empty or new folder")
        shutil.rmtree(out)
    (out / "static").mkdir(parents=True)
    (out / MARKER).write_text("built by bi-bench site build; emptied on every rebuild\n")


def write_static(out: Path) -> None:
    for sheet in sorted(site_folder("static").glob("*.css")):
        shutil.copyfile(sheet, out / "static" / sheet.name)
    (out / "static" / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")


def write_page(out: Path, page: str, html_text: str) -> None:
    target = out / page
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html_text, encoding="utf-8")


def write_run(out: Path, run: Run, model: Model, templates: Environment) -> None:
    write_page(out, run.page, templates.get_template("run.html").render(run_context(run, model)))
    shutil.copyfile(run.source, out / f"{run.stem}.json")
    write_csv(out / f"{run.stem}.csv", run.results.cases)
    for reproduction in run.reproductions:
        shutil.copyfile(reproduction.source, out / reproduction.href)


def build(results_dir: Path, out: Path) -> Path:
    """Render the site from every results file under `results_dir` into `out`; the path of its index.html.

    Files that do not validate are rejected: each named with its reason on stderr and on the rejected page."""
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: no such folder")
    loaded = load_all(results_dir)
    for file in loaded.rejected:
        print(f"rejected: {file.path}: {file.reason}", file=sys.stderr)
    models = group_models(loaded.runs)
    templates = jinja()
    prepare(out)
    write_static(out)
    write_page(out, "index.html", templates.get_template("index.html").render(index_context(models, loaded.rejected)))
    write_page(out, "rejected.html", templates.get_template("rejected.html").render(root="", rejected=loaded.rejected))
    for model in models:
        write_page(out, model.page, templates.get_template("model.html").render(model_context(model)))
        for run in model.runs:
            write_run(out, run, model, templates)
    return out / "index.html"
