"""Tensors derived from a parameter (an fp32 copy, packed weight panels), kept on it while its version is unchanged.

A derived tensor lives and dies with its parameter, and is made again after the parameter changes in place
(`update_weights` copies into it, which bumps its version counter).

The fp32 copy serves CPUs without native half-precision dot products (no avx512_bf16 / AMX), where oneDNN
runs bf16 GEMMs on a slow path (about 6x below fp32 on an AVX2 EPYC). Half-precision products are exact in
fp32, and a bf16 GEMM accumulates in fp32 anyway: upcasting the operands, multiplying in fp32 and rounding the
result once computes the same thing, in another K order.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, TypeVar

import torch

from bi_bench.kernels.cpu.isa import cpu_flags

ATTRIBUTE = "_bi_bench_derived"
HALF = (torch.bfloat16, torch.float16)
NATIVE_HALF_MATMUL = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def derived(t: torch.Tensor, kind: str, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """make(t), cached on t's parameter (t may be a view of one, such as weight.t()); plain tensors are not cached."""
    root = root_of(t)
    if not cacheable(root):
        return make(t)
    key = (kind, tuple(t.shape), t.stride(), t.storage_offset() - root.storage_offset(), t.dtype)
    cache = root.__dict__.setdefault(ATTRIBUTE, {})
    hit = cache.get(key)
    if hit is None or hit[0] != root._version:
        hit = (root._version, make(t))
        cache[key] = hit
    return hit[1]


T = TypeVar("T")


def derived_from(owner: object, kind: str, params: Sequence[torch.Tensor], make: Callable[[], T]) -> T:
    """make(), kept on owner under kind while no tensor of params has changed in place since: a version check per
    tensor, cheaper than a derived() lookup per tensor for what every step asks for."""
    versions = tuple(p._version for p in params)
    cache = owner.__dict__.setdefault(ATTRIBUTE, {})
    hit = cache.get(kind)
    if hit is None or hit[0] != versions:
        hit = (versions, make())
        cache[kind] = hit
    return hit[1]


def root_of(t: torch.Tensor) -> torch.Tensor:
    return t if t._base is None else t._base


def cacheable(root: torch.Tensor) -> bool:
    return isinstance(root, torch.nn.Parameter) and root.is_contiguous() and not root.is_inference()


def needs_upcast(t: torch.Tensor) -> bool:
    """A half-precision CPU tensor on a CPU without native half-precision dot products."""
    return t.is_cpu and t.dtype in HALF and not NATIVE_HALF_MATMUL


def fp32(t: torch.Tensor) -> torch.Tensor:
    """t in fp32; for a parameter (or a view of one, such as weight.t()) the cached fp32 copy."""
    root = root_of(t)
    if not cacheable(root):
        return t.float()
    copy = derived(root, "fp32", lambda r: r.detach().float())
    return copy.as_strided(t.shape, t.stride(), t.storage_offset() - root.storage_offset())
