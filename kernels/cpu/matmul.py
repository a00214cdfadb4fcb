"""CPU linear (x @ weight.T + bias) variants."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bi_bench.kernels.cpu import primitives, upcast
from bi_bench.kernels.cpu.derived import derived
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.tiling import pad_rows, row_tiled, split_count_from_rows
from bi_bench.kernels.registry import register

# MKL's small-matrix path (M < 12 here) reduces K in another order than its blocked path.
MIN_ROWS = 16
TILE_ROWS = 32


def canonical_mm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ weight [N, K].T in x's dtype, by the C++ kernel of csrc/matmul.cpp (its header states the
    reduction order); fp16 runs as fp32 (its products are exact there) and is rounded once at the end."""
    compute = torch.float32 if x.dtype == torch.float16 else x.dtype
    packed = derived(weight, f"packed_{compute}",
                     lambda w: extension().pack_weight(w.detach().to(compute).contiguous()))
    out = extension().canonical_linear(x.to(compute).contiguous(), packed, weight.shape[0])
    return out if x.dtype == torch.float32 else out.to(x.dtype)


def min_rows_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b with a padded to at least MIN_ROWS rows."""
    rows = a.shape[0]
    return primitives.mm(a if rows >= MIN_ROWS else pad_rows(a, MIN_ROWS), b)[:rows]


def _add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out + bias


@register("matmul", "fp32_accum", devices=("cpu",), batch_invariant=False, dtypes=upcast.HALF,
          description="bf16/fp16 as an fp32 F.linear on cached fp32 weights, rounded once: for CPUs without "
                      "native half-precision dot products", preferred_for=() if upcast.NATIVE_HALF_MATMUL else ("default",))
def linear_fp32_accum(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x.float(), upcast.fp32(weight), None if bias is None else upcast.fp32(bias)).to(x.dtype)


@register("matmul", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="F.linear: the backend picks its kernel (and its K order) from the shape",
          preferred_for=("default",))
def linear_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return F.linear(x, weight, bias)


@register("matmul", "cpu_canonical", devices=("cpu",), batch_invariant=True,
          description="C++ GEMM with one reduction order per output element (an FMA per k, k increasing; bf16 "
                      "in vdpbf16ps order), vectors over N only, one thread per element: the same bits for any "
                      "batch, thread count and x86-64 CPU", preferred_for=("invariant",))
def linear_canonical(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _add_bias(canonical_mm(x, weight), bias)


@register("matmul", "cpu_min_rows", devices=("cpu",), batch_invariant=False,
          description=f"pads M to at least {MIN_ROWS} rows and trusts the BLAS's blocked path to keep its K order: "
                      "an observation about MKL that fails at other thread counts and ISAs (negative control)")
def linear_min_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _add_bias(min_rows_mm(x, weight.t()), bias)


@register("matmul", "cpu_fixed_tile", devices=("cpu",), batch_invariant=True,
          description=f"{TILE_ROWS}-row tiles: every BLAS call has one shape, so the batch cannot change a row's "
                      "K order (the thread count and the CPU still can)")
def linear_fixed_tile(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return _add_bias(row_tiled(lambda tile: primitives.mm(tile, weight.t()), x, TILE_ROWS), bias)


@register("matmul", "split_k", devices=("cpu", "cuda"), batch_invariant=False,
          description="split-K whose split count follows M, like vendor heuristics (negative control)")
def linear_split_k(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    splits = split_count_from_rows(x.shape[0])
    partials = [torch.mm(xs, ws.t()) for xs, ws in zip(x.chunk(splits, dim=1), weight.chunk(splits, dim=1))]
    return _add_bias(torch.stack(partials).sum(0), bias)
