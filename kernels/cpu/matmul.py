"""CPU linear (x @ weight.T + bias) variants."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bi_bench.kernels.cpu.derived import HALF, NATIVE_HALF_MATMUL, cacheable, derived, fp32, root_of
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.measured import CPU_CLASS, MEASURED_FASTEST, MEASURED_HERE
from bi_bench.kernels.generic import primitives
from bi_bench.kernels.generic.matmul import add_bias
from bi_bench.kernels.generic.tiling import pad_rows, row_tiled
from bi_bench.kernels.registry import KernelVariant, fuses, get, register

# MKL's small-matrix path (M < 12 here) reduces K in another order than its blocked path.
MIN_ROWS = 16
TILE_ROWS = 32


def packed_weight(weight: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """weight [N, K] in csrc/matmul.cpp's panel layout, in `compute`, made once per parameter version."""
    return derived(weight, f"packed_{compute}", lambda w: extension().pack_weight(w.detach().to(compute).contiguous()))


def canonical_mms(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """x [M, K] @ weight [N, K].T for each weight, in x's dtype, by one call of the C++ kernel of csrc/matmul.cpp
    (its header states the reduction order; it rounds bf16 results itself); fp16 runs as fp32 (its products are
    exact there) and is rounded once at the end."""
    compute = torch.float32 if x.dtype == torch.float16 else x.dtype
    packed = [packed_weight(weight, compute) for weight in weights]
    outs = extension().canonical_linears(x.to(compute).contiguous(), packed, [w.shape[0] for w in weights])
    return outs if x.dtype == compute else [out.to(x.dtype) for out in outs]


def canonical_mm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return canonical_mms(x, [weight])[0]


def min_rows_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b with a padded to at least MIN_ROWS rows."""
    rows = a.shape[0]
    return primitives.mm(a if rows >= MIN_ROWS else pad_rows(a, MIN_ROWS), b)[:rows]


@register("matmul", "fp32_accum", devices=("cpu",), batch_invariant=False, dtypes=HALF,
          description="bf16/fp16 as an fp32 F.linear on cached fp32 weights, rounded once: for CPUs without "
                      "native half-precision dot products", preferred_for=() if NATIVE_HALF_MATMUL else ("default",))
def linear_fp32_accum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x.float(), fp32(weight), None if bias is None else fp32(bias)).to(x.dtype)


def fastest(x: torch.Tensor) -> KernelVariant:
    """The measured fastest variant for x's rows and dtype on this CPU class."""
    return get("matmul", next(name for below, name in MEASURED_FASTEST[(CPU_CLASS, x.dtype)] if x.shape[0] < below))


@register("matmul", "cpu_fastest", devices=("cpu",), batch_invariant=False,
          dtypes=tuple(dtype for cpu_class, dtype in MEASURED_FASTEST if cpu_class == CPU_CLASS),
          description="per dtype and row count, the variant benchmarks/decode_kernels.py measured fastest on this "
                      "CPU class (where one was measured): the kernel, and so a row's bits, change with the batch",
          preferred_for=("default",))
def linear_fastest(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return fastest(x).fn(x, weight, bias)


@fuses("cpu_fastest")
def linears_fastest(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None]
                    ) -> list[torch.Tensor]:
    return fastest(x).linears(x, weights, biases)


def onednn_weight(weight: torch.Tensor) -> torch.Tensor:
    """weight reordered once into oneDNN's blocked layout (what torch.compile's weight freezing does)."""
    return derived(weight, "onednn", lambda w: torch.ops.mkldnn._reorder_linear_weight(w.detach(), 1))


# Default mode's linear on native-bf16 CPUs whose class kernels/cpu/measured.py has no table for (those take
# cpu_fastest): on an avx512_bf16 EPYC it beat F.linear (MKL in fp32, oneDNN unpacked in bf16) at every decode
# shape, fp32 and bf16 (docs/performance.md). Without native bf16 default mode keeps F.linear (fp32) and
# fp32_accum (bf16).
@register("matmul", "onednn_packed", devices=("cpu",) if torch.backends.mkldnn.is_available() else (),
          batch_invariant=False, dtypes=(torch.float32, torch.bfloat16),
          description="oneDNN inner product on weights reordered once into its blocked layout, as "
                      "torch.compile's weight freezing does",
          preferred_for=("default",) if NATIVE_HALF_MATMUL and not MEASURED_HERE else ())
def linear_onednn_packed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    if not cacheable(root_of(weight)):  # reordered on every call it would cost more than it saves
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, onednn_weight(weight), bias, "none", [], "")


@register("matmul", "cpu_canonical", devices=("cpu",), batch_invariant=True,
          description="C++ GEMM with one reduction order per output element (an FMA per k, k increasing; bf16 "
                      "in vdpbf16ps order), vectors over N only, one thread per element: the same bits for any "
                      "batch, thread count and x86-64 CPU", preferred_for=("invariant",))
def linear_canonical(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return add_bias(canonical_mm(x, weight), bias)


@fuses("cpu_canonical")
def linears_canonical(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None]
                      ) -> list[torch.Tensor]:
    return [add_bias(out, bias) for out, bias in zip(canonical_mms(x, weights), biases)]


@register("matmul", "cpu_min_rows", devices=("cpu",), batch_invariant=False,
          description=f"pads M to at least {MIN_ROWS} rows and trusts the BLAS's blocked path to keep its K order: "
                      "an observation about MKL that fails at other thread counts and ISAs (negative control)")
def linear_min_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return add_bias(min_rows_mm(x, weight.t()), bias)


@register("matmul", "cpu_fixed_tile", devices=("cpu",), batch_invariant=True,
          description=f"{TILE_ROWS}-row tiles: every BLAS call has one shape, so the batch cannot change a row's "
                      "K order (the thread count and the CPU still can)")
def linear_fixed_tile(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return add_bias(row_tiled(lambda tile: primitives.mm(tile, weight.t()), x, TILE_ROWS), bias)
