"""CPU paged attention variants: queries packed by sequence, keys and values read from the block cache."""
from __future__ import annotations

import math
from dataclasses import dataclass

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
          description="scaled_dot_product_attention: decodes in one call with keys padded to the longest context, "
                      "prefills per sequence; the backend picks its kernel from the shape",
          preferred_for=("default",))
def attention_sdpa(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                   scale: float) -> torch.Tensor:
    out = torch.empty_like(q)
    query_lens = meta.query_lens()
    decodes = [b for b, n in enumerate(query_lens) if n == 1]
    if decodes:
        rows = torch.tensor([meta.query_start[b] for b in decodes])
        out[rows] = _decode_sdpa(q[rows], k_cache, v_cache, meta, decodes, scale)
    for b in (b for b, n in enumerate(query_lens) if n > 1):
        start, end, length = meta.query_start[b], meta.query_start[b + 1], meta.context_lens[b]
        keys = gather_context(k_cache, meta.block_tables[b], length).transpose(0, 1)
        values = gather_context(v_cache, meta.block_tables[b], length).transpose(0, 1)
        positions = torch.arange(length - (end - start), length)
        mask = torch.arange(length)[None, :] <= positions[:, None]
        out[start:end] = F.scaled_dot_product_attention(
            q[start:end].transpose(0, 1), keys, values, attn_mask=mask, scale=scale, enable_gqa=True,
        ).transpose(0, 1)
    return out


def _decode_sdpa(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                 seqs: list[int], scale: float) -> torch.Tensor:
    """One query per sequence, all sequences in one call: keys padded to the longest context and masked."""
    lengths = torch.tensor([meta.context_lens[b] for b in seqs])
    longest = int(lengths.max())
    tables = meta.block_tables[seqs, :math.ceil(longest / k_cache.shape[1])].long().clamp(min=0)
    keys = k_cache[tables].flatten(1, 2)[:, :longest].transpose(1, 2)  # [B, Hkv, L, D]
    values = v_cache[tables].flatten(1, 2)[:, :longest].transpose(1, 2)
    mask = (torch.arange(longest)[None, :] < lengths[:, None])[:, None, None, :]
    return F.scaled_dot_product_attention(q[:, :, None], keys, values, attn_mask=mask, scale=scale,
                                          enable_gqa=True)[:, :, 0]


@dataclass
class TilePlan:
    """Where each slot of each fixed-size query tile reads from: rows are (token, head-in-group) pairs.

    Padding slots repeat their sequence's first row so they stay finite; their results are dropped.
    """

    token: torch.Tensor  # [N, TILE_ROWS] packed query index
    head: torch.Tensor  # [N, TILE_ROWS] head within the kv group
    valid: torch.Tensor  # [N, TILE_ROWS]
    position: torch.Tensor  # [N, TILE_ROWS]
    seq: torch.Tensor  # [N]


def tile_plan(meta: AttentionMetadata, group: int) -> TilePlan:
    if ("tiles", group) in meta.plans:
        return meta.plans[("tiles", group)]
    token, head, valid, position, seq = [], [], [], [], []
    for b, length in enumerate(meta.context_lens):
        start, count = meta.query_start[b], meta.query_start[b + 1] - meta.query_start[b]
        rows = count * group
        slots = torch.arange(math.ceil(rows / TILE_ROWS) * TILE_ROWS)
        ok = slots < rows
        slots = torch.where(ok, slots, 0)
        token.append(start + slots // group)
        head.append(slots % group)
        valid.append(ok)
        position.append(length - count + slots // group)
        seq.append(torch.full((len(slots) // TILE_ROWS,), b))
    plan = TilePlan(*(torch.cat(t).view(-1, TILE_ROWS) for t in (token, head, valid, position)), torch.cat(seq))
    meta.plans[("tiles", group)] = plan
    return plan


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
    tokens, heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[2]
    group = heads // num_kv_heads
    plan = tile_plan(meta, group)
    grouped = q.view(tokens, num_kv_heads, group, head_dim)
    tiles = grouped[plan.token, :, plan.head].permute(0, 2, 1, 3).float()  # [N, Hkv, TILE_ROWS, D]
    positions = plan.position
    tables = meta.block_tables[plan.seq]
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
    out = q.new_empty(tokens, num_kv_heads, group, head_dim)
    out[plan.token[plan.valid], :, plan.head[plan.valid]] = out_rows[plan.valid].to(q.dtype)
    return out.view(tokens, heads, head_dim)


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
