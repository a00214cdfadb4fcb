"""Where the files bi-bench ships beside its code live: the suites and the leaderboard site's templates and
stylesheets, read through importlib.resources, so an install from a wheel finds them from any directory.

pyproject.toml makes the repository's suites/ folder the package `bi_bench.suites`, and the site's templates and
stylesheets are package data of `bi_bench.harness.site`: copied into a wheel, the checkout's own folders in an
editable install.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SUITES = "bi_bench.suites"
SITE = "bi_bench.harness.site"


def suite_file(name: str) -> Path:
    """suites/<name>, e.g. smollm2-cpu.yaml."""
    return _path(SUITES, name)


def site_folder(name: str) -> Path:
    """site/<name>: templates or static."""
    return _path(SITE, name)


def _path(package: str, name: str) -> Path:
    found = files(package) / name
    if not isinstance(found, Path):  # results record a suite's path, and jinja reads templates from a folder
        raise RuntimeError(f"{package}: installed as {type(found).__name__}, not as files on disk; "
                           f"install bi-bench from a wheel or the checkout")
    return found
