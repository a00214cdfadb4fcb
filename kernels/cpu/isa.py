"""The CPU's instruction-set features that decide which kernel paths (and so which bits) it can run, and its class."""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
# Widest first: a CPU belongs to the first class whose features it has all of.
CLASSES = (
    ("amx", {"amx_tile", "amx_bf16"}),
    ("avx512bf16", {"avx512f", "avx512_bf16"}),
    ("avx512", {"avx512f"}),
    ("avx2", {"avx2", "fma"}),
)
BASELINE = "baseline"


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The first processor's flags; empty where there is no /proc/cpuinfo (not Linux) or it lists none."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return set()
    for line in lines:
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def isa_features(flags: Collection[str]) -> list[str]:
    """Which of FEATURES are among `flags`, in FEATURES order."""
    return [feature for feature in FEATURES if feature in flags]


def isa_class(features: Collection[str]) -> str:
    """amx, avx512bf16, avx512, avx2 or baseline: the widest class all of whose features are present."""
    present = set(features)
    return next((name for name, needed in CLASSES if needed <= present), BASELINE)
