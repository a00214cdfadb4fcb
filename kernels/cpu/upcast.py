"""bf16/fp16 matmuls as fp32 GEMMs on CPUs without native half-precision dot products.

Without avx512_bf16 / AMX, oneDNN runs bf16 GEMMs on a slow path (about 6x below fp32 on an AVX2 EPYC).
Half-precision products are exact in fp32, and a bf16 GEMM accumulates in fp32 anyway: upcasting the
operands, multiplying in fp32 and rounding the result once computes the same thing, in another K order.
Weights are upcast once and cached while their version counter is unchanged.
"""
from __future__ import annotations

from pathlib import Path

import torch

HALF = (torch.bfloat16, torch.float16)
CACHE_ATTRIBUTE = "_bi_bench_fp32"  # (version, fp32 copy), kept on the parameter: it lives and dies with it


def _native_half_matmul() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return True
    flags = cpuinfo.read_text().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


NATIVE_HALF_MATMUL = _native_half_matmul()


def needs_upcast(t: torch.Tensor) -> bool:
    return t.dtype in HALF and not NATIVE_HALF_MATMUL


def fp32(t: torch.Tensor) -> torch.Tensor:
    """t in fp32; for a parameter (or a view of one, such as weight.t()) the cached fp32 copy."""
    root = t if t._base is None else t._base
    if not isinstance(root, torch.nn.Parameter) or not root.is_contiguous() or root.is_inference():
        return t.float()
    cached = getattr(root, CACHE_ATTRIBUTE, None)
    if cached is None or cached[0] != root._version:
        cached = (root._version, root.detach().float())
        setattr(root, CACHE_ATTRIBUTE, cached)
    return cached[1].as_strided(t.shape, t.stride(), t.storage_offset() - root.storage_offset())
