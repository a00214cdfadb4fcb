"""The site renderer without a browser: escaping, which models count as validated, downloads, the CLI."""
from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bi_bench.harness.cli.site import site
from bi_bench.harness.results.file import slug
from bi_bench.harness.results.reproduction import reproduction_path
from bi_bench.harness.site import build
from bi_bench.harness.site.figures import check_badge
from bi_bench.harness.site.load import group_models, load_all
from bi_bench.harness.site.render import index_context, reproduce_lines
from results_factory import (FORGED, FORGED_CASE, SCRIPT_PAYLOAD, SETTINGS, VALIDATED, make_results, write,
                             write_leaderboard, write_reproduction)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    return build(write_leaderboard(root / "results"), root / "out").parent


def pages(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def section(html_text: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html_text, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_results_text_is_escaped_on_every_page(built: Path) -> None:
    for page in pages(built):
        text = page.read_text()
        assert "<img" not in text, page
        assert "<script>window.__pwned" not in text, page
    index = (built / "index.html").read_text()
    assert "&lt;img src=x onerror=window.__pwned=1&gt;" in index


def test_figure_data_lives_in_attributes_not_scripts(built: Path) -> None:
    page = next((built / "models").glob("img-src-x-onerror*.html")).read_text()
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
    assert all("pwned" not in script for script in scripts)
    assert page.count('data-figure="') == 5
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=2" in page


def figures(page: str) -> list[dict[str, Any]]:
    return [json.loads(html.unescape(raw)) for raw in re.findall(r'data-figure="([^"]*)"', page)]


def test_model_page_plots_throughput_per_kernel_variant_and_tp_degree(tmp_path: Path) -> None:
    write(make_results("org/model", settings=SETTINGS), tmp_path / "results")
    out = build(tmp_path / "results", tmp_path / "out").parent
    [plot] = [f for f in figures((out / "models" / "org-model-bfloat16.html").read_text())
              if f["layout"]["title"]["text"].startswith("Throughput by TP degree")]
    bars = {trace["name"]: dict(zip(trace["x"], trace["text"])) for trace in plot["data"]}
    assert all(trace["type"] == "bar" for trace in plot["data"])
    assert bars == {"default": {"TP 1 · own kernels": "1.00×", "TP 2 · own kernels": "1.00×",
                                "TP 1 · matmul=split_k": "1.25×"},
                    "invariant": {"TP 1 · own kernels": "2.00×", "TP 2 · own kernels": "2.50×",
                                  "TP 1 · matmul=cpu_min_rows": "2.50×"}}
    assert plot["layout"]["xaxis"]["categoryarray"][:3] == ["TP 1 · own kernels", "TP 2 · own kernels",
                                                           "TP 1 · matmul=split_k"]
    [run_page] = (out / "runs").rglob("*.html")
    assert section(run_page.read_text(), "throughput").count("<tr>") == 1 + 2 + len(SETTINGS)


def test_only_real_validated_models_lead(built: Path) -> None:
    index = (built / "index.html").read_text()
    leaderboard = section(index, "validated")
    assert leaderboard.count("<tr>") - 1 == len(VALIDATED)  # minus the header row
    assert "random:qwen3-8b" not in leaderboard and "Llama-3.2-1B" not in leaderboard
    assert "random:qwen3-8b" in section(index, "synthetic")
    assert "Llama-3.2-1B" in section(index, "unvalidated")
    assert "failed claims: 1" in section(index, "unvalidated")


def test_synthetic_run_claiming_validation_is_rejected(tmp_path: Path) -> None:
    synthetic = make_results("random:tiny-llama", synthetic=True)
    forged = synthetic.model_copy(update={"summary": synthetic.summary.model_copy(update={"validated": True})})
    write(forged, tmp_path)
    loaded = load_all(tmp_path)
    assert loaded.runs == []
    [rejected] = loaded.rejected
    assert rejected.reason == "summary.validated: recorded True, recomputed False"


def test_forged_file_is_rejected_with_its_reason_and_counts_for_nothing(built: Path) -> None:
    index = (built / "index.html").read_text()
    assert FORGED not in index and FORGED.lower() not in index
    assert 'href="rejected.html"' in section(index, "rejected")
    rejected = section((built / "rejected.html").read_text(), "rejected-files")
    assert f"{slug(FORGED)}-bfloat16/cpu-test-chip/suite-20260101T000000Z.json" in rejected
    assert f"cases: &#39;{FORGED_CASE}&#39; (index 1) is missing" in rejected
    assert not any(FORGED.lower() in str(page).lower() for page in pages(built))


def test_rejected_text_is_escaped(tmp_path: Path) -> None:
    results = make_results("org/model")
    hostile = results.cases[0].model_copy(update={"check": SCRIPT_PAYLOAD})
    write(results.model_copy(update={"cases": [hostile, *results.cases[1:]]}), tmp_path / "results")
    out = build(tmp_path / "results", tmp_path / "out").parent
    rejected = (out / "rejected.html").read_text()
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=2" in rejected and "<script>window" not in rejected


def test_passing_reproduction_on_other_hardware_gets_a_badge(tmp_path: Path) -> None:
    source = write(make_results("org/model"), tmp_path / "results")
    write_reproduction(source, "cuda-nvidia-h100")
    write_reproduction(source, "cpu-test-chip")  # the run's own hardware: no badge
    out = build(tmp_path / "results", tmp_path / "out").parent
    index = (out / "index.html").read_text()
    [badge] = re.findall(r'<a class="badge reproduced" href="([^"]*)"[^>]*>([^<]*)</a>', index)
    assert badge[1] == "reproduced on cuda-nvidia-h100"
    assert (out / badge[0]).read_bytes() == reproduction_path(source, "cuda-nvidia-h100").read_bytes()
    [run_page] = (out / "runs").rglob("*.html")
    assert "reproduced on cuda-nvidia-h100" in run_page.read_text()


def test_failed_reproduction_gets_no_badge(tmp_path: Path) -> None:
    source = write(make_results("org/model"), tmp_path / "results")
    write_reproduction(source, "cuda-nvidia-h100", digests_from=make_results("org/model", failing="order"))
    loaded = load_all(tmp_path / "results")
    [run] = loaded.runs
    assert [r.file.reproduced for r in run.reproductions] == [False] and run.reproduced_on == []
    assert loaded.rejected == []


def test_reproduction_of_a_changed_file_is_rejected(tmp_path: Path) -> None:
    source = write(make_results("org/model"), tmp_path / "results")
    write_reproduction(source, "cuda-nvidia-h100")
    write(make_results("org/model", invariant_seconds=3.0), tmp_path / "results")  # same name, other bytes
    loaded = load_all(tmp_path / "results")
    assert loaded.runs[0].reproductions == []
    assert [r.reason for r in loaded.rejected] == [
        "results_sha256: suite-20260101T000000Z.json is no longer the file that was reproduced"]


def test_one_row_per_model_across_hardware(tmp_path: Path) -> None:
    context = index_context(group_models(load_all(write_leaderboard(tmp_path)).runs), [])
    rows = {r["results"].model.id: r for r in context["validated"]["rows"]}
    assert sorted(rows) == sorted(VALIDATED)
    smollm = rows[VALIDATED[0]]
    assert smollm["hardware"] == ["cuda-nvidia-h100", "cpu-test-chip"]  # the newest run first
    assert smollm["results"].run_id == "suite-20260102T000000Z"


def test_cases_csv_has_a_row_per_case_and_defuses_formulas(tmp_path: Path) -> None:
    results = make_results("org/model", skip_tp2=True)
    formula = results.cases[-1].model_copy(update={"reason": "=HYPERLINK(\"http://x\")"})
    write(results.model_copy(update={"cases": [*results.cases[:-1], formula]}), tmp_path / "results")
    out = build(tmp_path / "results", tmp_path / "out").parent
    [csv_path] = out.rglob("*.csv")
    rows = list(csv.DictReader(csv_path.open(newline="")))
    assert [r["id"] for r in rows] == [c.id for c in results.cases]
    assert rows[0]["verdict"] == "pass" and rows[0]["max_abs_dlogprob"] == "0.0"
    assert rows[-1]["verdict"] == "skipped" and rows[-1]["max_abs_dlogprob"] == ""
    assert rows[-1]["reason"] == "'=HYPERLINK(\"http://x\")"


def test_raw_json_is_copied_beside_its_run_page(tmp_path: Path) -> None:
    source = write(make_results("org/model"), tmp_path / "results")
    out = build(tmp_path / "results", tmp_path / "out").parent
    [page] = (out / "runs").rglob("*.html")
    copy = page.with_suffix(".json")
    assert copy.read_bytes() == source.read_bytes()
    text = page.read_text()
    assert f'href="{copy.name}"' in text and f'href="{page.with_suffix(".csv").name}"' in text


def test_invalid_file_is_named_and_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(make_results("org/model"), tmp_path / "results")
    (tmp_path / "results" / "broken.json").write_text('{"run_id": 3}')
    index = build(tmp_path / "results", tmp_path / "out")
    assert "1 file under" in section(index.read_text(), "rejected")
    assert "broken.json" in section((index.parent / "rejected.html").read_text(), "rejected-files")
    assert "broken.json" in capsys.readouterr().err
    assert "org/model" in section(index.read_text(), "validated")


def test_rebuild_replaces_its_own_output_but_not_a_foreign_folder(tmp_path: Path) -> None:
    write(make_results("org/model"), tmp_path / "results")
    out = tmp_path / "out"
    build(tmp_path / "results", out)
    (out / "stale.html").write_text("old")
    build(tmp_path / "results", out)
    assert not (out / "stale.html").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a bi-bench site build"):
        build(tmp_path / "results", foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_check_badge_reports_the_worst_claim() -> None:
    cases = make_results("org/model", failing="order", skip_tp2=True).cases
    assert check_badge(cases, "order") == "fail"
    assert check_badge(cases, "batch_size") == "pass"
    assert check_badge(cases, "no_such_check") is None


def test_reproduce_lines_pin_the_commit() -> None:
    results = make_results("org/model")
    lines = reproduce_lines(results)
    assert lines[0] == f"git checkout {results.environment.git_commit}"
    assert lines[-1] == ".venv/bin/bi-bench run suites/test.yaml"


def test_cli_prints_the_index_path(tmp_path: Path) -> None:
    write(make_results("org/model"), tmp_path / "results")
    out = tmp_path / "out"
    result = CliRunner().invoke(site, ["build", "--results", str(tmp_path / "results"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()) == (out / "index.html").resolve()
    assert (out / "static" / "plotly.min.js").stat().st_size > 1_000_000


def test_cli_names_a_missing_results_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(site, ["build", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "nope: no such folder" in result.output

