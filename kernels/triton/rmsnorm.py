"""Triton RMSNorm variants (Hugging Face LlamaRMSNorm arithmetic, or Gemma's with `unit_offset`; optional fused
residual add)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from bi_bench.kernels.registry import register

BLOCK = 1024


@triton.jit
def _load_sum(x_ptr, residual_ptr, row_start, offs, limit, HAS_RESIDUAL: tl.constexpr):
    """x (+ residual, rounded to x's dtype) at row_start + offs for offs < limit, zero elsewhere."""
    mask = offs < limit
    x = tl.load(x_ptr + row_start + offs, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        # An fp32 sum rounded once to bf16/fp16 equals their own correctly rounded add (fp32 has >= 2p+2 bits),
        # and it sidesteps the interpreter's broken 16-bit float arithmetic.
        residual = tl.load(residual_ptr + row_start + offs, mask=mask, other=0.0)
        x = (x.to(tl.float32) + residual.to(tl.float32)).to(x_ptr.dtype.element_ty)
    return x


@triton.jit
def _sum_squares(x_ptr, residual_ptr, row, start, end, H, HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    """fp32 sum of x*x over [start, end): one lane per BLOCK offset, lanes summed once at the end."""
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for offset in tl.range(start, end, BLOCK):
        offs = offset + tl.arange(0, BLOCK)
        x = _load_sum(x_ptr, residual_ptr, row * H, offs, end, HAS_RESIDUAL).to(tl.float32)
        acc += x * x
    return tl.sum(acc, axis=0)


@triton.jit
def _write_normalized(x_ptr, residual_ptr, weight_ptr, out_ptr, summed_ptr, row, H, rstd,
                      HAS_RESIDUAL: tl.constexpr, UNIT_OFFSET: tl.constexpr, BLOCK: tl.constexpr):
    for offset in tl.range(0, H, BLOCK):
        offs = offset + tl.arange(0, BLOCK)
        mask = offs < H
        x = _load_sum(x_ptr, residual_ptr, row * H, offs, H, HAS_RESIDUAL)
        if HAS_RESIDUAL:
            tl.store(summed_ptr + row * H + offs, x, mask=mask)
        weight = tl.load(weight_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if UNIT_OFFSET:
            # Gemma: ((x.float() * rstd) * (1 + weight.float())).to(x.dtype)
            out = (x.to(tl.float32) * rstd) * (1.0 + weight)
        else:
            # HF: weight * (x.float() * rstd).to(x.dtype); one fp32 product rounded once, like torch
            out = weight * (x.to(tl.float32) * rstd).to(x_ptr.dtype.element_ty).to(tl.float32)
        tl.store(out_ptr + row * H + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rmsnorm_row_kernel(x_ptr, residual_ptr, weight_ptr, out_ptr, summed_ptr, H, eps,
                        HAS_RESIDUAL: tl.constexpr, UNIT_OFFSET: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    mean_square = _sum_squares(x_ptr, residual_ptr, row, 0, H, H, HAS_RESIDUAL, BLOCK) / H
    _write_normalized(x_ptr, residual_ptr, weight_ptr, out_ptr, summed_ptr, row, H,
                      tl.math.rsqrt(mean_square + eps), HAS_RESIDUAL, UNIT_OFFSET, BLOCK)


@triton.jit
def _partial_squares_kernel(x_ptr, residual_ptr, partial_ptr, H, chunk, num_chunks,
                            HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    row, part = tl.program_id(0).to(tl.int64), tl.program_id(1)
    start = part * chunk
    total = _sum_squares(x_ptr, residual_ptr, row, start, tl.minimum(start + chunk, H), H, HAS_RESIDUAL, BLOCK)
    tl.store(partial_ptr + row * num_chunks + part, total)


@triton.jit
def _normalize_from_partials_kernel(x_ptr, residual_ptr, weight_ptr, out_ptr, summed_ptr, partial_ptr, H, eps,
                                    num_chunks, HAS_RESIDUAL: tl.constexpr, UNIT_OFFSET: tl.constexpr,
                                    CHUNKS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, CHUNKS)
    partials = tl.load(partial_ptr + row * num_chunks + offs, mask=offs < num_chunks, other=0.0)
    mean_square = tl.sum(partials, axis=0) / H
    _write_normalized(x_ptr, residual_ptr, weight_ptr, out_ptr, summed_ptr, row, H,
                      tl.math.rsqrt(mean_square + eps), HAS_RESIDUAL, UNIT_OFFSET, BLOCK)


def _prepare(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None, unit_offset: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Contiguous x, weight and residual, the output buffer, and the second result (x itself or a buffer)."""
    if x.dim() != 2 or weight.shape != (x.shape[1],):
        raise ValueError(f"rmsnorm wants x [M, H] and weight [H]; got {tuple(x.shape)} and {tuple(weight.shape)}")
    if residual is not None and residual.shape != x.shape:
        raise ValueError(f"residual must match x {tuple(x.shape)}; got {tuple(residual.shape)}")
    summed = x if residual is None else torch.empty(x.shape, dtype=x.dtype, device=x.device)
    x = x.contiguous()
    residual = None if residual is None else residual.to(x.dtype).contiguous()
    out_dtype = x.dtype if unit_offset else torch.promote_types(x.dtype, weight.dtype)
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    return x, weight.contiguous(), residual, out, summed


@register("rmsnorm", "triton_rowwise", devices=("cuda",), batch_invariant=True,
          description=f"one program per row, {BLOCK}-wide lanes over H reduced once at the end: "
                      "a row's sum of squares never depends on M", preferred_for=("invariant",))
def rmsnorm_rowwise(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                    unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x, weight, residual, out, summed = _prepare(x, weight, residual, unit_offset)
    if x.shape[0]:
        _rmsnorm_row_kernel[(x.shape[0],)](x, residual if residual is not None else x, weight, out, summed,
                                           x.shape[1], eps, HAS_RESIDUAL=residual is not None,
                                           UNIT_OFFSET=unit_offset, BLOCK=BLOCK)
    return out, summed


def chunk_count(m: int) -> int:
    """Split H more when few rows would leave most of the GPU idle (the M-dependence is the point)."""
    if m < 4:
        return 8
    if m < 32:
        return 4
    if m < 256:
        return 2
    return 1


@register("rmsnorm", "triton_split", devices=("cuda",), batch_invariant=False,
          description="H split into chunks whose count follows M; partial sums of squares added afterwards "
                      "(negative control)")
def rmsnorm_split(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None,
                  unit_offset: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x, weight, residual, out, summed = _prepare(x, weight, residual, unit_offset)
    (m, h), has_residual = x.shape, residual is not None
    if m == 0:
        return out, summed
    residual_arg = residual if has_residual else x
    chunks = min(chunk_count(m), max(1, h))
    chunk = triton.cdiv(h, chunks)
    partials = torch.empty(m, chunks, dtype=torch.float32, device=x.device)
    _partial_squares_kernel[(m, chunks)](x, residual_arg, partials, h, chunk, chunks,
                                         HAS_RESIDUAL=has_residual, BLOCK=min(BLOCK, triton.next_power_of_2(chunk)))
    _normalize_from_partials_kernel[(m,)](x, residual_arg, weight, out, summed, partials, h, eps, chunks,
                                          HAS_RESIDUAL=has_residual, UNIT_OFFSET=unit_offset,
                                          CHUNKS=triton.next_power_of_2(chunks), BLOCK=BLOCK)
    return out, summed
