"""The committed lock of the environment (requirements.lock): its digest, and where what is installed differs.

`make install` installs exactly the lock and then runs `python -m bi_bench.harness.run.lock`; results record
the lock's digest, these differences and the versions of the packages that can change bits.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from bi_bench.kernels.handover import REPOSITORY

REPO = Path(REPOSITORY)
LOCK = REPO / "requirements.lock"
BIT_PACKAGES = ("torch", "transformers", "triton", "numpy", "gguf", "tokenizers")
OURS = "bi-bench"  # installed editable, from the checkout itself


def pins(text: str) -> dict[str, str]:
    """name -> version of each `name==version` line; comments and blank lines skipped."""
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version.strip()
    return found


def installed() -> dict[str, str]:
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in importlib.metadata.distributions()
            if canonicalize_name(dist.metadata["Name"]) != OURS}


def versions(packages: tuple[str, ...] = BIT_PACKAGES) -> dict[str, str | None]:
    present = installed()
    return {name: present.get(canonicalize_name(name)) for name in packages}


def differences(locked: dict[str, str], present: dict[str, str]) -> list[str]:
    """One line per package whose installed version is not the locked one. A local build tag is not a version
    (torch 2.13.0+cpu is the lock's 2.13.0), and a CUDA build of torch brings packages the CPU lock cannot name."""
    torch_deps = _cuda_torch_requirements(present)
    lines = []
    for name in sorted({*locked, *present}):
        want, have = locked.get(name), present.get(name)
        if want is None and name not in torch_deps:
            lines.append(f"{name}: {have} installed, not in the lock")
        elif have is None and want is not None:
            lines.append(f"{name}: {want} locked, not installed")
        elif want is not None and Version(have).public != Version(want).public:
            lines.append(f"{name}: {want} locked, {have} installed")
    return lines


def digest(path: Path = LOCK) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def lock_differences(path: Path = LOCK) -> list[str] | None:
    """None without a lock (an install from a wheel, away from the checkout)."""
    return differences(pins(path.read_text()), installed()) if path.is_file() else None


def _cuda_torch_requirements(present: dict[str, str]) -> set[str]:
    if "+cpu" in present.get("torch", "+cpu"):
        return set()
    return {canonicalize_name(Requirement(req).name) for req in importlib.metadata.requires("torch") or []}


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else LOCK
    found = lock_differences(path)
    if found is None:
        print(f"{path}: no such lock file", file=sys.stderr)
        return 2
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    if found:
        print(f"{path}: this environment is not the lock; `make clean install` rebuilds it", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
