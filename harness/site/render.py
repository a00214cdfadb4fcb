"""Pages from templates: jinja2 with its filters, and each page's context."""
from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bi_bench.harness.packaged import site_folder
from bi_bench.harness.results.file import ResultsFile
from bi_bench.harness.site.figures import (check_badge, checks_of, dlogprob_by_position, figure_json,
                                           first_divergence_histogram, invariance_matrix, max_dlogprob,
                                           not_validated_because, throughput_bars, throughput_by_setting, tp_degrees,
                                           unique_completions)
from bi_bench.harness.site.load import Model, Rejected, Run
from bi_bench.harness.suite.schema import DEFAULT_BACKEND


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
