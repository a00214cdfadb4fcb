"""The C++ CPU kernels (kernels/cpu/csrc), built once per machine and instruction set by torch's extension loader.

`BI_BENCH_CPU_ISA` picks the build: `native` (default: every instruction this CPU has, avx512_bf16 included)
or `avx2` (AVX2 + FMA only, as on any x86-64-v3 CPU). The kernels' bits do not depend on it; the build that
proves so is the `avx2` one run on an AVX-512 machine.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import torch
from platformdirs import user_cache_dir

from bi_bench.kernels.cpu.isa import cpu_flags

CSRC = Path(__file__).with_name("csrc")
SOURCES = ["bindings.cpp", "matmul.cpp", "pointwise.cpp", "rmsnorm.cpp", "rotary.cpp", "log_softmax.cpp", "greedy.cpp",
           "cumsum.cpp", "row_attention.cpp", "phase_attention.cpp", "decoder_layer.cpp"]
HEADERS = ["bf16.h", "canonical.h", "canonical_math.h", "log_total.h", "row_max.h", "rows.h"]
ISA_VARIABLE = "BI_BENCH_CPU_ISA"
ISA_FLAGS = {"native": ["-march=native"], "avx2": ["-mavx2", "-mfma", "-mno-avx512f"]}
# fp-contract off: every multiply and add rounds on its own unless the source says fma, whatever the
# compiler vectorizes or peels. no-trapping-math lets loops with selects (exp's special cases) vectorize; it
# changes no value (no reassociation, no contraction). OpenMP spreads the work over torch's intra-op threads.
COMPILE_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
LINK_FLAGS = ["-fopenmp"]


class ExtensionError(RuntimeError):
    pass


def build_isa() -> str:
    isa = os.environ.get(ISA_VARIABLE, "native")
    if isa not in ISA_FLAGS:
        raise ExtensionError(f"{ISA_VARIABLE}={isa!r}: expected one of {', '.join(ISA_FLAGS)}")
    return isa


def target_isa(isa: str | None = None) -> str:
    """The instructions the build for `isa` (default: BI_BENCH_CPU_ISA's) computes with, as its matmul_isa()
    reports them once built: avx512_bf16, avx512f or avx2. Known without building it (a run of another engine
    never needs the build); tests pin it to the built module's own answer."""
    flags = cpu_flags() if (isa or build_isa()) == "native" else {"avx2", "fma"}
    if "avx512f" not in flags:
        return "avx2"
    return "avx512_bf16" if "avx512_bf16" in flags else "avx512f"


def compile_flags(isa: str) -> list[str]:
    return COMPILE_FLAGS + ISA_FLAGS[isa]


def module_name(isa: str) -> str:
    """Named by a digest of all it is built from (a native build also by this CPU's flags): a built module is
    never stale, so it is imported without the extension loader's lock, which a process killed while holding
    it leaves behind for good."""
    recipe = b"".join((CSRC / name).read_bytes() for name in SOURCES + HEADERS)
    recipe += repr((compile_flags(isa), LINK_FLAGS, torch.__version__)).encode()
    if isa == "native":
        recipe += " ".join(sorted(cpu_flags())).encode()
    return f"bi_bench_cpu_{isa}_{hashlib.sha256(recipe).hexdigest()[:16]}"


@functools.cache
def extension() -> ModuleType:
    isa = build_isa()
    name = module_name(isa)
    build_dir = Path(user_cache_dir("bi-bench")) / "kernels" / name
    built = build_dir / f"{name}.so"
    if built.exists():
        with contextlib.suppress(ImportError):  # a module half written by a killed build is built again
            return _import(name, built)
    from torch.utils.cpp_extension import load

    build_dir.mkdir(parents=True, exist_ok=True)
    return load(name, [str(CSRC / source) for source in SOURCES], extra_cflags=compile_flags(isa),
                extra_ldflags=LINK_FLAGS, extra_include_paths=[str(CSRC)], build_directory=str(build_dir))


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
