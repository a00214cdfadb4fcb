"""Paged attention in C++ where every (query token, head) row owns its reduction: batch-invariant by construction.

One program serves the query heads of one KV head for one token, reading each key once for all of them; each row
walks its own keys in position order (fixed-order dot products, an exact max, exp-weighted sums in key
order, exp from canonical_math.h), so its bits cannot depend on the batch, the chunking, the cache, the CPU or
whether it is a prefill or a decode row; and it reads the block cache in place, with none of the padding of
fixed-shape tiles. It is part of the C++ extension (kernels/cpu/extension.py). Backward (for
`batch_invariant_mode`) differentiates the torch fixed-split kernel: gradients need not be bitwise.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.cpu.attention import attention_fixed_split
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.registry import register


def row_plan(meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each query token's sequence, how many keys it sees (its position + 1) and the block tables as the program
    reads them (int32), memoized for the step: every layer's call shares them."""
    if "rows" not in meta.plans:
        seqs, keys = [], []
        for b, (count, length) in enumerate(zip(meta.query_lens(), meta.context_lens)):
            seqs.extend([b] * count)
            keys.extend(range(length - count + 1, length + 1))
        meta.plans["rows"] = (torch.tensor(seqs, dtype=torch.int64), torch.tensor(keys, dtype=torch.int64),
                              meta.block_tables.to(torch.int32))
    return meta.plans["rows"]


def row_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                  scale: float, window: int | None) -> torch.Tensor:
    out = extension().row_attention(q.float().contiguous(), k_cache.contiguous(), v_cache.contiguous(),
                                     *row_plan(meta), scale, window or 0)
    return out.to(q.dtype)


class _RowAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                scale: float, window: int | None) -> torch.Tensor:
        ctx.save_for_backward(q, k_cache, v_cache)
        ctx.meta, ctx.scale, ctx.window = meta, scale, window
        return row_attention(q, k_cache, v_cache, meta, scale, window)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = attention_fixed_split(*inputs, ctx.meta, ctx.scale, ctx.window)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None, None)


@register("attention", "cpu_row_program", devices=("cpu",), batch_invariant=True,
          description="every (token, head) row walks its keys in position order in C++, reading the block "
                      "cache in place: one path for prefill, decode, chunked and cached tokens",
          preferred_for=("invariant",))
def attention_row_program(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float, window: int | None = None) -> torch.Tensor:
    if torch.is_grad_enabled() and (q.requires_grad or k_cache.requires_grad or v_cache.requires_grad):
        return _RowAttention.apply(q, k_cache, v_cache, meta, scale, window)
    return row_attention(q, k_cache, v_cache, meta, scale, window)  # an engine step: no graph to record
