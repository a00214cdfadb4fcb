"""CPU paged attention by fixed splits: queries packed by sequence, keys and values read from the block cache."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.generic.attention import gather_blocks, in_window
from bi_bench.kernels.registry import register

SPLIT_KEYS = 64
TILE_ROWS = 16
TILE_CHUNK_BYTES = 64 << 20


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


def _split_context(cache: torch.Tensor, tables: torch.Tensor, num_splits: int, split_keys: int,
                   transposed: bool = False) -> torch.Tensor:
    """The cached keys (or values) of each block table, cut into splits, in fp32: [N, Hkv, S, split_keys, D],
    or [N, Hkv, S, D, split_keys] when `transposed` (keys, laid out for the score product).

    Table pads and blocks past a table's end read block 0: finite values whose weights are exact zeros.
    """
    blocks_needed = num_splits * split_keys // cache.shape[1]
    blocks = tables[:, :blocks_needed].clamp(min=0)
    if blocks.shape[1] < blocks_needed:
        blocks = F.pad(blocks, (0, blocks_needed - blocks.shape[1]))
    gathered = gather_blocks(cache, blocks).view(len(tables), num_splits, split_keys, *cache.shape[2:])
    order = (0, 3, 1, 4, 2) if transposed else (0, 3, 1, 2, 4)
    return gathered.permute(order).to(torch.float32, memory_format=torch.contiguous_format)


def _tile_chunks(num_tiles: int, tile_bytes: int) -> list[slice]:
    """Tiles in groups of bounded size: tiles never interact, so the grouping cannot change a bit."""
    per_chunk = max(1, TILE_CHUNK_BYTES // tile_bytes)
    return [slice(start, start + per_chunk) for start in range(0, num_tiles, per_chunk)]


def _attend(tiles: torch.Tensor, positions: torch.Tensor, keys_t: torch.Tensor, values: torch.Tensor,
            scale: float, window: int | None) -> torch.Tensor:
    """tiles [N, Hkv, R, D] against their sequences' splits (keys_t [N, Hkv, S, D, split], values
    [N, Hkv, S, split, D]) -> [N, Hkv, R, D]."""
    num_splits, split_keys = values.shape[2:4]
    key_pos = torch.arange(num_splits * split_keys).view(num_splits, split_keys)
    masked = ~in_window(key_pos[None, None, :, None, :], positions[:, None, None, :, None], window)
    scores = torch.matmul(tiles[:, :, None], keys_t) * scale  # [N, Hkv, S, R, split]
    scores = scores.masked_fill(masked, -math.inf)
    weights = torch.exp(scores - scores.amax(dim=(2, 4), keepdim=True))
    # A contiguous last-dim sum this small always runs serially per row, so its order is fixed.
    split_sums = weights.sum(-1)
    split_outputs = torch.matmul(weights, values)  # [N, Hkv, S, R, D]
    total, acc = split_sums[:, :, 0], split_outputs[:, :, 0]
    for split in range(1, num_splits):
        total = total + split_sums[:, :, split]
        acc = acc + split_outputs[:, :, split]
    return acc / total[..., None]


def split_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                    scale: float, split_keys: int, window: int | None = None) -> torch.Tensor:
    """Softmax attention with one reduction path per query row, whatever the batch, chunking or caching.

    Rows go in TILE_ROWS-row tiles and keys in `split_keys`-key splits, so every product has the shape
    [TILE_ROWS, D] x [D, split_keys] or [TILE_ROWS, split_keys] x [split_keys, D]. A row's max over its keys
    is exact, so its weights are the same wherever it sits; the splits are added in position order, and
    splits past the row's position (or before its window) add exact zeros.
    """
    tokens, heads, head_dim = q.shape
    num_kv_heads = k_cache.shape[2]
    group = heads // num_kv_heads
    plan = tile_plan(meta, group)
    num_splits = math.ceil(max(meta.context_lens) / split_keys)
    tables = meta.block_tables.index_select(0, plan.seq)
    grouped = q.view(tokens, num_kv_heads, group, head_dim)
    tiles = grouped[plan.token, :, plan.head].permute(0, 2, 1, 3).float()  # [N, Hkv, TILE_ROWS, D]
    tile_bytes = 4 * num_kv_heads * num_splits * split_keys * (2 * head_dim + 2 * TILE_ROWS)
    out_rows = torch.cat([_attend(tiles[chunk], plan.position[chunk],
                                  _split_context(k_cache, tables[chunk], num_splits, split_keys, transposed=True),
                                  _split_context(v_cache, tables[chunk], num_splits, split_keys), scale, window)
                          for chunk in _tile_chunks(len(tiles), tile_bytes)])
    out_rows = out_rows.permute(0, 2, 1, 3)  # [N, TILE_ROWS, Hkv, D]
    out = q.new_empty(tokens, num_kv_heads, group, head_dim)
    out[plan.token[plan.valid], :, plan.head[plan.valid]] = out_rows[plan.valid].to(q.dtype)
    return out.view(tokens, heads, head_dim)


@register("attention", "cpu_fixed_split", devices=("cpu",), batch_invariant=True,
          description=f"{SPLIT_KEYS}-key splits and {TILE_ROWS}-row query tiles, merged in position order: "
                      "one path for prefill, decode, chunked and cached tokens; differentiable")
def attention_fixed_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float, window: int | None = None) -> torch.Tensor:
    return split_attention(q, k_cache, v_cache, meta, scale, max(SPLIT_KEYS, k_cache.shape[1]), window)


@register("attention", "dynamic_split", devices=("cpu",), batch_invariant=False,
          description="split-KV whose split size follows the number of sequences (negative control)")
def attention_dynamic_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            meta: AttentionMetadata, scale: float, window: int | None = None) -> torch.Tensor:
    block_size = k_cache.shape[1]
    blocks_per_split = max(1, math.ceil(max(meta.context_lens) / block_size / max(1, 8 // meta.num_seqs)))
    return split_attention(q, k_cache, v_cache, meta, scale, blocks_per_split * block_size, window)
