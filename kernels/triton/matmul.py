"""Triton linear (x @ weight.T + bias) variants: a persistent batch-invariant kernel and a split-K contrast."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import triton
import triton.language as tl

from bi_bench.kernels.registry import register

# The interpreter runs programs one after another: a few are enough to exercise the persistent tile loop.
INTERPRETER_PROGRAMS = 4


@dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def interpreting() -> bool:
    return bool(triton.knobs.runtime.interpret)


def tile_config(dtype: torch.dtype) -> TileConfig:
    """One tile shape per dtype, never per M: each output element sees the same MMA sequence in every batch."""
    if interpreting():
        return TileConfig(16, 32, 32, 1, 1)
    if dtype == torch.float32:
        return TileConfig(64, 64, 32, 4, 3)
    return TileConfig(128, 128, 64, 8, 3)


def block_k_for(k: int, config: TileConfig) -> int:
    """BLOCK_K from K alone (small K gets a smaller block so no load is mostly padding)."""
    return min(config.block_k, max(16, triton.next_power_of_2(k)))


@cache
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def num_programs(device: torch.device, num_tiles: int) -> int:
    return min(INTERPRETER_PROGRAMS if interpreting() else _sm_count(device), num_tiles)


@triton.jit
def _tile_coords(tile, num_m, num_n, GROUP_M: tl.constexpr):
    """Grouped tile order: neighbouring programs share weight columns in L2."""
    tiles_per_group = GROUP_M * num_n
    first_m = (tile // tiles_per_group) * GROUP_M
    group_rows = tl.minimum(num_m - first_m, GROUP_M)
    pid_m = first_m + (tile % tiles_per_group) % group_rows
    pid_n = (tile % tiles_per_group) // group_rows
    return pid_m, pid_n


@triton.jit
def _dot_k_range(x_ptr, w_ptr, offs_m, offs_n, k_start, k_end, M, N, stride_xm, stride_xk, stride_wn, stride_wk,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, EMULATE_DOT: tl.constexpr):
    """fp32 sum over K in [k_start, k_end), BLOCK_K at a time in increasing K.

    EMULATE_DOT (interpreter only) multiplies and sums instead of tl.dot: the interpreter's tl.dot goes through
    BLAS, whose result for a row depends on its place in the tile, and garbles 16-bit floats.
    """
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in tl.range(k_start, k_end, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        a = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < k_end), other=0.0)
        b = tl.load(w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wn,
                    mask=(offs_k[:, None] < k_end) & (offs_n[None, :] < N), other=0.0)
        if EMULATE_DOT:
            acc += tl.sum(a.to(tl.float32)[:, :, None] * b.to(tl.float32)[None, :, :], axis=1)
        else:
            acc = tl.dot(a, b, acc, input_precision="ieee")
    return acc


@triton.jit
def _matmul_persistent_kernel(x_ptr, w_ptr, bias_ptr, out_ptr, M, N, K,
                              stride_xm, stride_xk, stride_wn, stride_wk, stride_om, stride_on,
                              HAS_BIAS: tl.constexpr, EMULATE_DOT: tl.constexpr,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                              GROUP_M: tl.constexpr):
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    for tile in tl.range(tl.program_id(0), num_m * num_n, tl.num_programs(0)):
        pid_m, pid_n = _tile_coords(tile, num_m, num_n, GROUP_M)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        acc = _dot_k_range(x_ptr, w_ptr, offs_m, offs_n, 0, K, M, N, stride_xm, stride_xk, stride_wn, stride_wk,
                           BLOCK_M, BLOCK_N, BLOCK_K, EMULATE_DOT)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
        tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :] * stride_on,
                 acc.to(out_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def _matmul_split_k_kernel(x_ptr, w_ptr, partial_ptr, M, N, K, k_per_split,
                           stride_xm, stride_xk, stride_wn, stride_wk,
                           EMULATE_DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           BLOCK_K: tl.constexpr):
    pid_m, pid_n, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k_start = split * k_per_split
    acc = _dot_k_range(x_ptr, w_ptr, offs_m, offs_n, k_start, tl.minimum(k_start + k_per_split, K), M, N,
                       stride_xm, stride_xk, stride_wn, stride_wk, BLOCK_M, BLOCK_N, BLOCK_K, EMULATE_DOT)
    tl.store(partial_ptr + (split * M + offs_m[:, None]) * N + offs_n[None, :], acc,
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def _check_shapes(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    if x.dim() != 2 or weight.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"matmul wants x [M, K] and weight [N, K]; got {tuple(x.shape)} and {tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must be [{weight.shape[0]}]; got {tuple(bias.shape)}")


@register("matmul", "triton_persistent", devices=("cuda",), batch_invariant=True,
          description="persistent kernel, one tile shape per dtype and a BLOCK_K set by K alone: every output "
                      "element reduces all of K in one fp32 accumulator in the same order, no split-K",
          preferred_for=("invariant",))
def matmul_persistent(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    _check_shapes(x, weight, bias)
    (m, k), n = x.shape, weight.shape[0]
    out = x.new_empty(m, n)
    if m == 0 or n == 0:
        return out
    config = tile_config(x.dtype)
    programs = num_programs(x.device, triton.cdiv(m, config.block_m) * triton.cdiv(n, config.block_n))
    _matmul_persistent_kernel[(programs,)](
        x, weight, bias if bias is not None else x, out, m, n, k,
        x.stride(0), x.stride(1), weight.stride(0), weight.stride(1), out.stride(0), out.stride(1),
        HAS_BIAS=bias is not None, EMULATE_DOT=interpreting(),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=block_k_for(k, config), GROUP_M=8,
        num_warps=config.num_warps, num_stages=config.num_stages)
    return out


def split_count(m: int) -> int:
    """Vendor-style heuristic: split K more when few rows leave the GPU idle."""
    if m <= 8:
        return 4
    if m <= 64:
        return 2
    return 1


@register("matmul", "triton_split_k", devices=("cuda",), batch_invariant=False,
          description="split-K whose split count follows M (more splits for few rows); fp32 partials are "
                      "added afterwards, so a row's K order changes with the batch (negative control)")
def matmul_split_k(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    _check_shapes(x, weight, bias)
    (m, k), n = x.shape, weight.shape[0]
    config = tile_config(x.dtype)
    block_k = block_k_for(k, config)
    # Split boundaries on multiples of 16, not of BLOCK_K: a split's blocks need not line up with the unsplit ones.
    k_per_split = triton.cdiv(triton.cdiv(k, split_count(m)), 16) * 16
    splits = triton.cdiv(k, k_per_split) if k else 1
    partials = torch.zeros(splits, m, n, dtype=torch.float32, device=x.device)
    if m and n:
        grid = (triton.cdiv(m, config.block_m), triton.cdiv(n, config.block_n), splits)
        _matmul_split_k_kernel[grid](
            x, weight, partials, m, n, k, k_per_split,
            x.stride(0), x.stride(1), weight.stride(0), weight.stride(1),
            EMULATE_DOT=interpreting(), BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=block_k,
            num_warps=config.num_warps, num_stages=config.num_stages)
    out = partials.sum(0)
    if bias is not None:
        out += bias.float()
    return out.to(x.dtype)
