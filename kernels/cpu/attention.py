"""CPU paged attention variants: queries packed by sequence, keys and values read from the block cache."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.registry import register

SPLIT_KEYS = 64
TILE_ROWS = 16


def gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` cached tokens of one sequence: [length, Hkv, D]."""
    block_size = cache.shape[1]
    blocks = block_table[: math.ceil(length / block_size)].long()
    return cache[blocks].flatten(0, 1)[:length]


@register("attention", "torch_sdpa", devices=("cpu", "cuda"), batch_invariant=False,
          description="scaled_dot_product_attention per sequence: the backend picks its kernel from the shape",
          preferred_for=("default",))
def attention_sdpa(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                   scale: float) -> torch.Tensor:
    out = torch.empty_like(q)
    for b, (length, table) in enumerate(zip(meta.context_lens, meta.block_tables)):
        start, end = meta.query_start[b], meta.query_start[b + 1]
        keys = gather_context(k_cache, table, length).transpose(0, 1)
        values = gather_context(v_cache, table, length).transpose(0, 1)
        positions = torch.arange(length - (end - start), length)
        mask = torch.arange(length)[None, :] <= positions[:, None]
        out[start:end] = F.scaled_dot_product_attention(
            q[start:end].transpose(0, 1), keys, values, attn_mask=mask, scale=scale, enable_gqa=True,
        ).transpose(0, 1)
    return out


def _query_tiles(q: torch.Tensor, meta: AttentionMetadata, num_kv_heads: int):
    """Rows grouped per kv head ((token, head-in-group) pairs) and cut into fixed-size tiles.

    Returns tiles [N, Hkv, TILE_ROWS, D] in fp32, each tile's sequence [N], each row's position [N, TILE_ROWS]
    and, per tile, the (query row, head) each of its rows came from so results can be scattered back.
    """
    group = q.shape[1] // num_kv_heads
    tiles, tile_seq, tile_pos, tile_src = [], [], [], []
    for b, length in enumerate(meta.context_lens):
        start, end = meta.query_start[b], meta.query_start[b + 1]
        n = end - start
        rows = q[start:end].float().view(n, num_kv_heads, group, -1).permute(1, 0, 2, 3).reshape(
            num_kv_heads, n * group, -1)
        positions = torch.arange(length - n, length).repeat_interleave(group)
        source = torch.arange(start * group, end * group)
        for first in range(0, n * group, TILE_ROWS):
            count = min(TILE_ROWS, n * group - first)
            tile = rows.new_zeros(num_kv_heads, TILE_ROWS, rows.shape[-1])
            tile[:, :count] = rows[:, first:first + count]
            pos = torch.full((TILE_ROWS,), int(positions[first]))
            pos[:count] = positions[first:first + count]
            tiles.append(tile)
            tile_seq.append(b)
            tile_pos.append(pos)
            tile_src.append(source[first:first + count])
    return torch.stack(tiles), torch.tensor(tile_seq), torch.stack(tile_pos), tile_src


def _split_keys(cache: torch.Tensor, tables: torch.Tensor, split: int, split_keys: int) -> torch.Tensor:
    """Keys split `split` of every tile's sequence: [N, Hkv, split_keys, D] (pad blocks read block 0)."""
    per_split = split_keys // cache.shape[1]
    blocks = tables[:, split * per_split:(split + 1) * per_split].long().clamp(min=0)
    if blocks.shape[1] < per_split:
        blocks = F.pad(blocks, (0, per_split - blocks.shape[1]))
    return cache[blocks].flatten(1, 2).transpose(1, 2).float()


def _batched_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, H, R, K] x [N, H, K, C] as one bmm of N*H fixed-shape matrices (differentiable)."""
    out = torch.bmm(a.flatten(0, 1), b.flatten(0, 1).contiguous())
    return out.view(*a.shape[:2], *out.shape[1:])


def split_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                    scale: float, split_keys: int) -> torch.Tensor:
    """Online softmax over key splits of `split_keys` tokens, always merged in position order.

    Every matmul has the shape [TILE_ROWS, D] x [D, split_keys] whatever the batch; a split past a row's
    position is fully masked and leaves its running max, sum and accumulator bit-for-bit unchanged.
    """
    num_kv_heads, head_dim = k_cache.shape[2], k_cache.shape[3]
    tiles, tile_seq, positions, sources = _query_tiles(q, meta, num_kv_heads)
    tables = meta.block_tables[tile_seq]
    num_splits = math.ceil(max(meta.context_lens) / split_keys)
    running_max = torch.full(tiles.shape[:3], -math.inf)
    running_sum = torch.zeros(tiles.shape[:3])
    acc = torch.zeros_like(tiles)
    for split in range(num_splits):
        keys = _split_keys(k_cache, tables, split, split_keys)
        values = _split_keys(v_cache, tables, split, split_keys)
        key_pos = torch.arange(split * split_keys, (split + 1) * split_keys)
        masked = (key_pos[None, None, :] > positions[:, :, None])[:, None]
        scores = _batched_mm(tiles, keys.transpose(-1, -2)) * scale
        scores = scores.masked_fill(masked, -math.inf)
        new_max = torch.maximum(running_max, scores.amax(-1))
        correction = torch.exp(running_max - new_max)
        probs = torch.exp(scores - new_max[..., None])
        running_sum = running_sum * correction + probs.sum(-1)
        acc = acc * correction[..., None] + _batched_mm(probs, values)
        running_max = new_max
    out_rows = (acc / running_sum[..., None]).permute(0, 2, 1, 3)  # [N, TILE_ROWS, Hkv, D]
    group = q.shape[1] // num_kv_heads
    out = q.new_empty(q.shape[0] * group, num_kv_heads, head_dim)
    for tile, src in enumerate(sources):
        out[src] = out_rows[tile, : len(src)].to(q.dtype)
    # rows were (token, head-in-group) pairs per kv head: back to [T, Hq, D]
    return out.view(q.shape[0], group, num_kv_heads, head_dim).permute(0, 2, 1, 3).reshape(q.shape)


@register("attention", "cpu_fixed_split", devices=("cpu",), batch_invariant=True,
          description=f"{SPLIT_KEYS}-key splits and {TILE_ROWS}-row query tiles, merged in position order: "
                      "one path for prefill, decode, chunked and cached tokens", preferred_for=("invariant",))
def attention_fixed_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float) -> torch.Tensor:
    return split_attention(q, k_cache, v_cache, meta, scale, max(SPLIT_KEYS, k_cache.shape[1]))


@register("attention", "dynamic_split", devices=("cpu",), batch_invariant=False,
          description="split-KV whose split size follows the number of sequences (negative control)")
def attention_dynamic_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            meta: AttentionMetadata, scale: float) -> torch.Tensor:
    block_size = k_cache.shape[1]
    blocks_per_split = max(1, math.ceil(max(meta.context_lens) / block_size / max(1, 8 // meta.num_seqs)))
    return split_attention(q, k_cache, v_cache, meta, scale, blocks_per_split * block_size)
