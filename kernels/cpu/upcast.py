"""bf16/fp16 matmuls as fp32 GEMMs on CPUs without native half-precision dot products.

Without avx512_bf16 / AMX, oneDNN runs bf16 GEMMs on a slow path (about 6x below fp32 on an AVX2 EPYC).
Half-precision products are exact in fp32, and a bf16 GEMM accumulates in fp32 anyway: upcasting the
operands, multiplying in fp32 and rounding the result once computes the same thing, in another K order.
Weights are upcast once and cached while their version counter is unchanged.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.cpu.derived import cacheable, derived, root_of
from bi_bench.kernels.cpu.isa import cpu_flags

HALF = (torch.bfloat16, torch.float16)


NATIVE_HALF_MATMUL = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def needs_upcast(t: torch.Tensor) -> bool:
    return t.dtype in HALF and not NATIVE_HALF_MATMUL


def fp32(t: torch.Tensor) -> torch.Tensor:
    """t in fp32; for a parameter (or a view of one, such as weight.t()) the cached fp32 copy."""
    root = root_of(t)
    if not cacheable(root):
        return t.float()
    copy = derived(root, "fp32", lambda r: r.detach().float())
    return copy.as_strided(t.shape, t.stride(), t.storage_offset() - root.storage_offset())
