"""`bi-bench site build`: the static leaderboard site from the results files."""
from __future__ import annotations

from pathlib import Path

import click

from bi_bench.harness.cli.errors import one_line_errors
from bi_bench.harness.site import build as build_site


@click.group()
def site() -> None:
    """The static leaderboard site (GitHub Pages)."""


@site.command()
@click.option("--results", "results_dir", default=Path("results"), show_default=True,
              type=click.Path(path_type=Path, file_okay=False), help="folder of results files, searched recursively")
@click.option("--out", default=Path("site/_build"), show_default=True, type=click.Path(path_type=Path, file_okay=False),
              help="output folder: must be empty, new, or an earlier build (which is replaced)")
@one_line_errors
def build(results_dir: Path, out: Path) -> None:
    """Render every results file into OUT and print the path of its index.html."""
    click.echo(build_site(results_dir, out).resolve())
