"""Writing the site: the pages, each run's cases as CSV, the stylesheets and plotly's bundled js."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import plotly.offline
from jinja2 import Environment

from bi_bench.harness.packaged import site_folder
from bi_bench.harness.results.file import CaseResult
from bi_bench.harness.results.metrics import VERDICT_STYLES, Metrics
from bi_bench.harness.site.load import Model, Run, group_models, load_all
from bi_bench.harness.site.render import index_context, jinja, model_context, run_context


MARKER = ".bi-bench-site"  # marks a folder this module built, so a rebuild may empty it
CASE_COLUMNS = ("id", "check", "mode", "tp", "control", "verdict", "reason", "kernels", "kernel_overrides", "params")

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
    (out / "static" / "verdicts.css").write_text(verdicts_css(), encoding="utf-8")
    (out / "static" / "plotly.min.js").write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")


def verdicts_css() -> str:
    """The verdicts' badge colours, from VERDICT_STYLES: style.css names them as --<verdict> and --<verdict>-bg."""
    colours = "".join(f"  --{v}: {style.text};\n  --{v}-bg: {style.background};\n"
                      for v, style in VERDICT_STYLES.items())
    badges = "".join(f".badge.{v} {{ color: var(--{v}); background: var(--{v}-bg); }}\n" for v in VERDICT_STYLES)
    return f":root {{\n{colours}}}\n{badges}"


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
