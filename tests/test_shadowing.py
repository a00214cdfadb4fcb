"""No folder of the repository stands in for an installed package, whatever the current directory.

Run from the repository root, `kernels/`, `engine/` and `harness/` are importable as top-level names too; Hugging
Face's `kernels` (which transformers >= 5.25 requires and imports) must still be what `import kernels` gives.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the folders the repository's scripts and tests put on sys.path besides its root
SCRIPT_FOLDERS = ("benchmarks", "examples", "tests", "tests/engine", "tests/kernels", "tests/harness", "tests/site")
HF_KERNELS = Path(importlib.metadata.distribution("kernels").locate_file("kernels/__init__.py"))


def python_from_root(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**_environ(), **env})


def _environ() -> dict[str, str]:
    import os
    return {key: value for key, value in os.environ.items() if key != "PYTHONSAFEPATH"}


def test_transformers_hub_kernels_import_from_the_repository_root() -> None:
    done = python_from_root("import transformers.integrations.hub_kernels, kernels; print(kernels.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == HF_KERNELS


def test_under_pytest_kernels_is_hugging_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "kernels", raising=False)
    module = importlib.import_module("kernels")
    assert Path(module.__file__) == HF_KERNELS and hasattr(module, "CUDAProperties")
    import bi_bench.kernels
    assert bi_bench.kernels.batch_invariant_mode is not None


def _kernels_file(queue: multiprocessing.Queue) -> None:
    sys.path.insert(0, str(REPO))
    import kernels
    queue.put(kernels.__file__)


def test_in_a_spawned_worker_kernels_is_hugging_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    context = multiprocessing.get_context("spawn")  # as the TP workers start
    queue = context.Queue()
    worker = context.Process(target=_kernels_file, args=(queue,))
    worker.start()
    found = queue.get(timeout=120)
    worker.join(timeout=60)
    assert Path(found) == HF_KERNELS


def test_a_name_no_distribution_has_is_not_found_from_the_root() -> None:
    for name in ("engine", "harness"):
        done = python_from_root(f"import {name}")
        assert done.returncode == 1 and f"ModuleNotFoundError: No module named '{name}'" in done.stderr, done.stderr


def test_a_name_another_distribution_has_goes_to_it(tmp_path: Path) -> None:
    theirs = tmp_path / "harness"
    theirs.mkdir()
    (theirs / "__init__.py").write_text("OWNER = 'theirs'\n")
    done = python_from_root("import harness, bi_bench.harness.run.lock; print(harness.OWNER)", PYTHONPATH=str(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == "theirs", done.stderr


def test_no_script_folder_holds_a_module_named_like_an_installed_package() -> None:
    installed = {name for name, dists in importlib.metadata.packages_distributions().items() if dists}
    ours = {path.stem if path.suffix == ".py" else path.name
            for folder in SCRIPT_FOLDERS for path in (REPO / folder).iterdir()
            if path.suffix == ".py" or (path / "__init__.py").exists()}
    assert ours and not ours & installed, sorted(ours & installed)
