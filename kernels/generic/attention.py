"""Paged attention by scaled_dot_product_attention, and the cache reads every paged attention shares."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.cpu.derived import needs_upcast
from bi_bench.kernels.registry import register


def in_window(key_pos: torch.Tensor, query_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """Which keys each query sees: causal, and with a window only the last `window` positions up to its own."""
    visible = key_pos <= query_pos
    return visible if window is None else visible & (key_pos > query_pos - window)


def gather_blocks(cache: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """cache[blocks] for block ids of any shape: [*blocks.shape, block_size, Hkv, D].

    index_select on a 2-D view of the cache: several times faster here than indexing the 4-D cache.
    """
    flat = cache.flatten(1).index_select(0, blocks.flatten().long())
    return flat.view(*blocks.shape, *cache.shape[1:])


def gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` cached tokens of one sequence: [length, Hkv, D]."""
    block_size = cache.shape[1]
    return gather_blocks(cache, block_table[: math.ceil(length / block_size)]).flatten(0, 1)[:length]


@register("attention", "torch_sdpa", devices=("cpu", "cuda"), batch_invariant=False,
          description="scaled_dot_product_attention: decodes in one call with keys padded to the longest context, "
                      "prefills per sequence; the backend picks its kernel from the shape; in fp32 where the "
                      "CPU lacks native half-precision dot products", graph_safe=False)
def attention_sdpa(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                   scale: float, window: int | None = None) -> torch.Tensor:
    if needs_upcast(q):
        return attention_sdpa(q.float(), k_cache, v_cache, meta, scale, window).to(q.dtype)
    out = torch.empty_like(q)
    query_lens = meta.query_lens()
    decodes = [b for b, n in enumerate(query_lens) if n == 1]
    if decodes:
        rows = torch.tensor([meta.query_start[b] for b in decodes])
        out[rows] = _decode_sdpa(q[rows], k_cache, v_cache, meta, decodes, scale, window)
    for b in (b for b, n in enumerate(query_lens) if n > 1):
        start, end, length = meta.query_start[b], meta.query_start[b + 1], meta.context_lens[b]
        keys = gather_context(k_cache, meta.block_tables[b], length).transpose(0, 1).to(q.dtype)
        values = gather_context(v_cache, meta.block_tables[b], length).transpose(0, 1).to(q.dtype)
        positions = torch.arange(length - (end - start), length)
        mask = in_window(torch.arange(length)[None, :], positions[:, None], window)
        # as a batch of one: torch's CPU flash kernel takes 4-D inputs only (3-D ones run the unfused math, ~2x slower)
        out[start:end] = F.scaled_dot_product_attention(
            q[start:end].transpose(0, 1)[None], keys[None], values[None], attn_mask=mask, scale=scale, enable_gqa=True,
        )[0].transpose(0, 1)
    return out


def _decode_sdpa(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                 seqs: list[int], scale: float, window: int | None) -> torch.Tensor:
    """One query per sequence, all sequences in one call: keys padded to the longest context and masked."""
    lengths = torch.tensor([meta.context_lens[b] for b in seqs])
    longest = int(lengths.max())
    tables = meta.block_tables[seqs, :math.ceil(longest / k_cache.shape[1])].clamp(min=0)
    keys = gather_blocks(k_cache, tables).flatten(1, 2)[:, :longest].transpose(1, 2).to(q.dtype)  # [B, Hkv, L, D]
    values = gather_blocks(v_cache, tables).flatten(1, 2)[:, :longest].transpose(1, 2).to(q.dtype)
    mask = in_window(torch.arange(longest)[None, :], lengths[:, None] - 1, window)[:, None, None, :]
    return F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=mask, scale=scale,
                                          enable_gqa=True)[:, :, 0]
