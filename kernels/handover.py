"""Keeps the repository's folders from standing in for installed top-level packages.

Run from the repository root (`python -c`, `python -m pytest`), `kernels/`, `engine/` and `harness/` are also
importable as the top-level names `kernels`, `engine` and `harness`. Hugging Face's `kernels` distribution owns
the first (transformers imports it), so a folder imported under such a name hands it over: to the installed
distribution of that name, or to nothing (ModuleNotFoundError), exactly as outside the repository.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import PathFinder

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hand_over(name: str) -> None:
    """Replaces the module being imported as `name` by what sys.path without the repository root holds."""
    for submodule in [key for key in sys.modules if key.startswith(f"{name}.")]:
        del sys.modules[submodule]  # ours, imported on the way here (this module among them)
    spec = PathFinder.find_spec(name, [entry for entry in sys.path if not _is_repository(entry)])
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the import statement returns what sys.modules holds once this module ran
    spec.loader.exec_module(module)


def _is_repository(entry: object) -> bool:
    return isinstance(entry, str) and os.path.realpath(entry or os.curdir) == os.path.realpath(REPOSITORY)
