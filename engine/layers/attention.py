from __future__ import annotations

import torch
from torch import nn

from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.kernels import KernelVariant


class PagedAttention(nn.Module):
    """Writes this step's keys and values to the block cache, then attends over the cache.

    A sliding-window layer (`window` set) attends to each query's last `window` positions only; its cache still
    keeps every key, so prefix caching, chunking and preemption need nothing of their own.
    """

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, attention: KernelVariant, scale: float,
                 window: int | None = None) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = scale
        self.window = window
        self.attention = attention
        self.k_cache = torch.empty(0)
        self.v_cache = torch.empty(0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        """q: [T, Hq, D]; k, v: [T, Hkv, D]."""
        self.k_cache.view(-1, self.num_kv_heads, self.head_dim)[batch.slot_mapping] = k
        self.v_cache.view(-1, self.num_kv_heads, self.head_dim)[batch.slot_mapping] = v
        return self.attention.fn(q, self.k_cache, self.v_cache, batch.attention, self.scale, self.window)
