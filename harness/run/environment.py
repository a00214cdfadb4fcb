"""Where a run happened: devices, CPU (model, ISA, threads, BLAS), library versions, and the bi-bench commit."""
from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
from pathlib import Path

import torch

from bi_bench.harness.results.file import Environment, slug
from bi_bench.harness.run import lock
from bi_bench.kernels.cpu.extension import target_isa
from bi_bench.kernels.cpu.isa import cpu_flags, isa_class, isa_features

TORCH_CPU_CONFIG = re.compile(r"BLAS|MKL|Math Kernel Library|oneDNN|DNNL|OpenMP|CPU capability", re.IGNORECASE)
BUILD_SETTINGS = "Build settings:"
SETTING_START = re.compile(r",\s*(?=[A-Z0-9_]+=)")  # a comma before KEY=: flag values hold commas too


def environment(device: str) -> Environment:
    cpu = cpu_model()
    isa = isa_features(cpu_flags())
    cuda = torch.cuda.is_available()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    hardware = slug(f"cuda-{gpus[0]}") if device == "cuda" and gpus else slug(f"cpu-{cpu}-{isa_class(isa)}")
    commit, dirty = git_state()
    return Environment(
        device=device,
        devices=["cpu", *gpus],
        cpu_model=cpu,
        cpu_isa=isa,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        torch_threads=torch.get_num_threads(),
        cpu_kernels=target_isa(),
        torch_cpu_config=torch_cpu_config(torch.__config__.show()),
        hardware=hardware,
        python=platform.python_version(),
        torch=torch.__version__,
        cuda=torch.version.cuda if cuda else None,
        nvidia_driver=nvidia_driver() if cuda else None,
        triton=_version("triton"),
        transformers=_version("transformers") or "missing",
        bi_bench=_version("bi-bench") or "missing",
        git_commit=commit,
        git_dirty=dirty,
        packages=lock.versions(),
        lock_sha256=lock.digest(),
        lock_differences=lock.lock_differences(),
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def torch_cpu_config(shown: str) -> list[str]:
    """The lines of `torch.__config__.show()` naming the BLAS, MKL, oneDNN, OpenMP and CPU capability torch was
    built with; of its one long `Build settings` line, only the settings so named (BLAS_INFO, USE_MKLDNN, ...)."""
    found: list[str] = []
    for line in shown.splitlines():
        text = line.strip().removeprefix("- ")
        if text.startswith(BUILD_SETTINGS):
            settings = SETTING_START.split(text.removeprefix(BUILD_SETTINGS).strip().rstrip(","))
            found += [s.strip() for s in settings if TORCH_CPU_CONFIG.search(s.split("=", 1)[0])]
        elif TORCH_CPU_CONFIG.search(text):
            found.append(text)
    return found


def nvidia_driver() -> str | None:
    """The driver version nvidia-smi reports for the first GPU; None without nvidia-smi (e.g. on ROCm)."""
    versions = (_output("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader") or "").split()
    return versions[0] if versions else None


def git_state(repo: Path = lock.REPO) -> tuple[str | None, bool | None]:
    """The checked-out commit and whether the tree differs from it: changed, staged or untracked files that git
    does not ignore. (None, None) outside a git checkout."""
    commit = _output("git", "-C", str(repo), "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _output("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=normal")
    return commit.strip(), None if status is None else bool(status.strip())


def _output(*command: str) -> str | None:
    """The command's stdout, or None when it cannot run or fails."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
