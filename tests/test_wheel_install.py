"""A wheel installed away from the checkout finds its suites, site templates, kernel sources and model configs.

The wheel goes into a fresh venv that borrows this venv's dependencies through a .pth file (the editable install's
own .pth there is not processed, so only the wheel provides bi_bench), and runs from a folder outside the checkout.
The demo's suite is loaded as `bi-bench demo` loads it, without the minutes of generation that follow.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

from bi_bench.kernels.cpu.extension import build_isa, module_name

REPO = Path(__file__).resolve().parent.parent
BUILD_OUTPUT = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "_build")


def not_sources(folder: str, names: list[str]) -> set[str]:
    """Build output anywhere, and the committed results at the top (harness/results is code)."""
    return BUILD_OUTPUT(folder, names) | ({"results"} if Path(folder) == REPO else set())


RESULTS = REPO / "results" / "smollm2-135m-float32"
PROBE = """
import json
from bi_bench.harness.cli import main as cli
from bi_bench.harness.site.render import jinja
from bi_bench.engine.loader import random_architectures
from bi_bench.kernels.cpu.extension import build_isa, module_name

found = {"templates": jinja().loader.searchpath, "architectures": random_architectures(),
         "kernels": module_name(build_isa())}
def _run(loaded, options):
    print(json.dumps({**found, "suite": str(loaded.path), "suite_name": loaded.suite.name}))
cli._run = _run
cli.main(["demo", "--quick"])
"""


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=not_sources)  # no stale build/ leaks into the wheel, none is left here
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", source,
        "-w", tmp_path / "wheels", cwd=tmp_path)
    [wheel] = (tmp_path / "wheels").glob("*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """The purelib folder of a new venv holding the wheel and, through a .pth file, this venv's dependencies."""
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "dependencies.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))
    run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel,
        cwd=venv.parent)
    return purelib


def test_an_installed_wheel_runs_the_demo_and_builds_the_site_from_any_directory(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    packaged = install(build_wheel(tmp_path), venv) / "bi_bench"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    found = json.loads(run(venv / "bin" / "python", "-c", PROBE, cwd=elsewhere).stdout)
    assert (found["suite"], found["suite_name"]) == (str(packaged / "suites" / "smollm2-cpu.yaml"), "smollm2-cpu")
    assert found["templates"] == [str(packaged / "harness" / "site" / "templates")]
    assert found["kernels"] == module_name(build_isa())  # the same C++ sources: the extension builds from them
    assert "smollm2-135m" in found["architectures"]

    run(venv / "bin" / "bi-bench", "site", "build", "--results", RESULTS, "--out", "site", cwd=elsewhere)
    assert (elsewhere / "site" / "index.html").is_file()
    assert list((elsewhere / "site" / "runs").rglob("*.html"))
    assert (elsewhere / "site" / "static" / "style.css").read_bytes() == \
        (REPO / "harness/site/static/style.css").read_bytes()
