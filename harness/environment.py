"""Where a run happened: devices, CPU, library versions, and the bi-bench commit it ran from."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

from bi_bench.harness.results import Environment, slug

REPO = Path(__file__).resolve().parent.parent


def environment(device: str) -> Environment:
    cpu = cpu_model()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    hardware = slug(f"cuda-{gpus[0]}") if device == "cuda" and gpus else slug(f"cpu-{cpu}")
    commit, dirty = git_state()
    return Environment(
        device=device,
        devices=["cpu", *gpus],
        cpu_model=cpu,
        hardware=hardware,
        python=platform.python_version(),
        torch=torch.__version__,
        triton=_version("triton"),
        transformers=_version("transformers") or "missing",
        bi_bench=_version("bi-bench") or "missing",
        git_commit=commit,
        git_dirty=dirty,
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_state() -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit.strip(), None if status is None else bool(status.strip())


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
