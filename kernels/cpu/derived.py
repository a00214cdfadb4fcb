"""Tensors derived from a parameter (an fp32 copy, packed weight panels), kept on it while its version is unchanged.

A derived tensor lives and dies with its parameter, and is made again after the parameter changes in place
(`update_weights` copies into it, which bumps its version counter).
"""
from __future__ import annotations

from typing import Callable

import torch

ATTRIBUTE = "_bi_bench_derived"


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


def root_of(t: torch.Tensor) -> torch.Tensor:
    return t if t._base is None else t._base


def cacheable(root: torch.Tensor) -> bool:
    return isinstance(root, torch.nn.Parameter) and root.is_contiguous() and not root.is_inference()
