"""Triton paged attention: a fixed-split batch-invariant kernel and a dynamic split-KV contrast.

One program per (query row, query head). A row's keys are cut into splits of a fixed size starting at
position 0; each split runs an fp32 online softmax over BLOCK_KEYS keys at a time, and split results are
merged in position order. Which splits and chunks a row sees depends only on its own position, so prefill,
decode, chunked prefill and cached prefixes all reduce its keys in the same order whatever the batch. A
sliding window skips the splits and chunks wholly before it and masks the keys before it in the first one.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from bi_bench.kernels.attention_metadata import AttentionMetadata, DeviceRows
from bi_bench.kernels.registry import register

BLOCK_KEYS = 64
SPLIT_KEYS = 256
# The dynamic contrast aims for this many (sequence, split) pairs, like split-KV decode heuristics.
TARGET_SPLITS = 8
NO_WINDOW = 2**31 - 1  # the window a full-attention layer passes: wider than any context


@triton.jit
def _first_key(length, window):
    """The first key a row that sees `length` keys attends to."""
    return tl.maximum(length - window, 0)


@triton.jit
def _attend_keys(q, k_ptr, v_ptr, table_ptr, kv_head, start, end, lo, block_size, scale,
                 stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
                 D, BLOCK_KEYS: tl.constexpr, BLOCK_D: tl.constexpr):
    """Online softmax of q over cached keys [max(start, lo), end): (max score, sum of exp, unnormalised output).

    `start` is a multiple of BLOCK_KEYS; chunks stay on that grid, and those wholly before `lo` are skipped, so
    every chunk processed holds a visible key (an all-masked first chunk would make the running max NaN).
    """
    offs_d = tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    running_max = float("-inf")
    running_sum = 0.0
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for first in tl.range(tl.maximum(start, lo // BLOCK_KEYS * BLOCK_KEYS), end, BLOCK_KEYS):
        pos = first + tl.arange(0, BLOCK_KEYS)
        valid = (pos < end) & (pos >= lo)
        block = tl.load(table_ptr + pos // block_size, mask=valid, other=0).to(tl.int64)
        slot = pos % block_size
        kv_mask = valid[:, None] & d_mask[None, :]
        k = tl.load(k_ptr + block[:, None] * stride_kb + slot[:, None] * stride_ks + kv_head * stride_kh
                    + offs_d[None, :], mask=kv_mask, other=0.0).to(tl.float32)
        scores = tl.where(valid, tl.sum(q[None, :] * k, axis=1) * scale, float("-inf"))
        new_max = tl.maximum(running_max, tl.max(scores, axis=0))
        correction = tl.exp(running_max - new_max)
        probs = tl.exp(scores - new_max)
        v = tl.load(v_ptr + block[:, None] * stride_vb + slot[:, None] * stride_vs + kv_head * stride_vh
                    + offs_d[None, :], mask=kv_mask, other=0.0).to(tl.float32)
        running_sum = running_sum * correction + tl.sum(probs, axis=0)
        acc = acc * correction + tl.sum(probs[:, None] * v, axis=0)
        running_max = new_max
    return running_max, running_sum, acc


@triton.jit
def _merge(run_max, run_sum, run_acc, part_max, part_sum, part_acc):
    """Log-sum-exp merge of a split's partial result into the running one (later split second)."""
    new_max = tl.maximum(run_max, part_max)
    run_scale = tl.exp(run_max - new_max)
    part_scale = tl.exp(part_max - new_max)
    return new_max, run_sum * run_scale + part_sum * part_scale, run_acc * run_scale + part_acc * part_scale


@triton.jit
def _load_query(q_ptr, row, head, stride_qt, stride_qh, D, BLOCK_D: tl.constexpr):
    offs_d = tl.arange(0, BLOCK_D)
    return tl.load(q_ptr + row * stride_qt + head * stride_qh + offs_d, mask=offs_d < D, other=0.0).to(tl.float32)


@triton.jit
def _fixed_split_kernel(q_ptr, k_ptr, v_ptr, out_ptr, tables_ptr, row_seq_ptr, row_pos_ptr, block_size, scale,
                        window, stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs,
                        stride_vh, stride_ot, stride_oh, stride_table, D, GROUP: tl.constexpr,
                        SPLIT_KEYS: tl.constexpr, BLOCK_KEYS: tl.constexpr, BLOCK_D: tl.constexpr):
    row, head = tl.program_id(0).to(tl.int64), tl.program_id(1)
    table_ptr = tables_ptr + tl.load(row_seq_ptr + row).to(tl.int64) * stride_table
    length = tl.load(row_pos_ptr + row) + 1
    lo = _first_key(length, window)
    q = _load_query(q_ptr, row, head, stride_qt, stride_qh, D, BLOCK_D)
    run_max = float("-inf")
    run_sum = 0.0
    run_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for start in tl.range(lo // SPLIT_KEYS * SPLIT_KEYS, length, SPLIT_KEYS):
        part_max, part_sum, part_acc = _attend_keys(
            q, k_ptr, v_ptr, table_ptr, head // GROUP, start, tl.minimum(start + SPLIT_KEYS, length), lo,
            block_size, scale, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, D, BLOCK_KEYS,
            BLOCK_D)
        run_max, run_sum, run_acc = _merge(run_max, run_sum, run_acc, part_max, part_sum, part_acc)
    offs_d = tl.arange(0, BLOCK_D)
    tl.store(out_ptr + row * stride_ot + head * stride_oh + offs_d,
             (run_acc / run_sum).to(out_ptr.dtype.element_ty), mask=offs_d < D)


@triton.jit
def _split_partial_kernel(q_ptr, k_ptr, v_ptr, tables_ptr, row_seq_ptr, row_pos_ptr, max_ptr, sum_ptr, acc_ptr,
                          block_size, scale, window, split_keys, num_splits,
                          stride_qt, stride_qh, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
                          stride_table, D, HEADS: tl.constexpr, GROUP: tl.constexpr,
                          BLOCK_KEYS: tl.constexpr, BLOCK_D: tl.constexpr):
    row, head, split = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    length = tl.load(row_pos_ptr + row) + 1
    lo = _first_key(length, window)
    start = split * split_keys
    if (start < length) & (start + split_keys > lo):
        table_ptr = tables_ptr + tl.load(row_seq_ptr + row).to(tl.int64) * stride_table
        q = _load_query(q_ptr, row, head, stride_qt, stride_qh, D, BLOCK_D)
        part_max, part_sum, part_acc = _attend_keys(
            q, k_ptr, v_ptr, table_ptr, head // GROUP, start, tl.minimum(start + split_keys, length), lo,
            block_size, scale, stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh, D, BLOCK_KEYS,
            BLOCK_D)
        index = (row * HEADS + head) * num_splits + split
        tl.store(max_ptr + index, part_max)
        tl.store(sum_ptr + index, part_sum)
        offs_d = tl.arange(0, BLOCK_D)
        tl.store(acc_ptr + index * BLOCK_D + offs_d, part_acc)


@triton.jit
def _merge_splits_kernel(row_pos_ptr, max_ptr, sum_ptr, acc_ptr, out_ptr, window, split_keys, num_splits,
                         stride_ot, stride_oh, D, HEADS: tl.constexpr, BLOCK_D: tl.constexpr):
    row, head = tl.program_id(0).to(tl.int64), tl.program_id(1)
    length = tl.load(row_pos_ptr + row) + 1
    offs_d = tl.arange(0, BLOCK_D)
    run_max = float("-inf")
    run_sum = 0.0
    run_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for split in tl.range(_first_key(length, window) // split_keys, tl.cdiv(length, split_keys)):
        index = (row * HEADS + head) * num_splits + split
        run_max, run_sum, run_acc = _merge(run_max, run_sum, run_acc, tl.load(max_ptr + index),
                                           tl.load(sum_ptr + index), tl.load(acc_ptr + index * BLOCK_D + offs_d))
    tl.store(out_ptr + row * stride_ot + head * stride_oh + offs_d,
             (run_acc / run_sum).to(out_ptr.dtype.element_ty), mask=offs_d < D)


def row_layout(meta: AttentionMetadata, num_rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query row's sequence and cache position (int32), copied to the device once per step."""
    if meta.device_rows is None:
        query_lens = torch.tensor(meta.query_lens())
        if int(query_lens.sum()) != num_rows:
            raise ValueError(f"query_start covers {int(query_lens.sum())} rows but q has {num_rows}")
        row_seq = torch.repeat_interleave(torch.arange(meta.num_seqs), query_lens)
        first_pos = torch.tensor(meta.context_lens) - query_lens - torch.tensor(meta.query_start[:-1])
        row_pos = torch.arange(num_rows) + first_pos[row_seq]
        meta.device_rows = DeviceRows(row_seq.to(device, torch.int32), row_pos.to(device, torch.int32))
    return meta.device_rows.seq, meta.device_rows.pos


def _check(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    if q.dim() != 3 or k_cache.dim() != 4 or v_cache.shape != k_cache.shape or q.shape[2] != k_cache.shape[3]:
        raise ValueError(f"attention wants q [T, Hq, D] and caches [blocks, block_size, Hkv, D]; got "
                         f"{tuple(q.shape)}, {tuple(k_cache.shape)}, {tuple(v_cache.shape)}")
    if q.shape[1] % k_cache.shape[2]:
        raise ValueError(f"{q.shape[1]} query heads do not group over {k_cache.shape[2]} kv heads")
    if q.stride(2) != 1 or k_cache.stride(3) != 1 or v_cache.stride(3) != 1:
        raise ValueError("attention wants a contiguous head dim in q and the caches")


def _cache_strides(k_cache: torch.Tensor, v_cache: torch.Tensor) -> tuple[int, ...]:
    return (*k_cache.stride()[:3], *v_cache.stride()[:3])


@register("attention", "triton_fixed_split", devices=("cuda",), batch_invariant=True,
          description=f"paged, one program per (query row, head): {SPLIT_KEYS}-key splits of {BLOCK_KEYS}-key "
                      "chunks from position 0, merged in order: one path for prefill, decode, chunked and "
                      "cached tokens", preferred_for=("invariant",))
def attention_fixed_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float, window: int | None = None) -> torch.Tensor:
    _check(q, k_cache, v_cache)
    (rows, heads, dim), out = q.shape, torch.empty_like(q)
    if rows == 0:
        return out
    row_seq, row_pos = row_layout(meta, rows, q.device)
    tables = meta.block_tables.to(q.device, torch.int32)
    _fixed_split_kernel[(rows, heads)](
        q, k_cache, v_cache, out, tables, row_seq, row_pos, meta.block_size, scale, window or NO_WINDOW,
        q.stride(0), q.stride(1), *_cache_strides(k_cache, v_cache), out.stride(0), out.stride(1),
        tables.stride(0), dim, GROUP=heads // k_cache.shape[2], SPLIT_KEYS=SPLIT_KEYS, BLOCK_KEYS=BLOCK_KEYS,
        BLOCK_D=triton.next_power_of_2(dim))
    return out


def dynamic_split_keys(meta: AttentionMetadata) -> int:
    """Split size that gives ~TARGET_SPLITS splits per sequence over all sequences: fewer sequences, more splits."""
    splits = max(1, TARGET_SPLITS // meta.num_seqs)
    return max(BLOCK_KEYS, math.ceil(max(meta.context_lens) / splits / BLOCK_KEYS) * BLOCK_KEYS)


@register("attention", "triton_dynamic_split", devices=("cuda",), batch_invariant=False,
          description="split-KV whose split count follows the number of sequences (fewer sequences, more "
                      "splits), partial results merged by log-sum-exp, like vendor decode kernels",
          preferred_for=("default",))
def attention_dynamic_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            meta: AttentionMetadata, scale: float, window: int | None = None) -> torch.Tensor:
    _check(q, k_cache, v_cache)
    (rows, heads, dim), out = q.shape, torch.empty_like(q)
    if rows == 0:
        return out
    row_seq, row_pos = row_layout(meta, rows, q.device)
    tables = meta.block_tables.to(q.device, torch.int32)
    split_keys = dynamic_split_keys(meta)
    num_splits = math.ceil(max(meta.context_lens) / split_keys)
    block_d = triton.next_power_of_2(dim)
    part_max = torch.empty(rows, heads, num_splits, dtype=torch.float32, device=q.device)
    part_sum = torch.empty_like(part_max)
    part_acc = torch.empty(rows, heads, num_splits, block_d, dtype=torch.float32, device=q.device)
    group = heads // k_cache.shape[2]
    _split_partial_kernel[(rows, heads, num_splits)](
        q, k_cache, v_cache, tables, row_seq, row_pos, part_max, part_sum, part_acc, meta.block_size, scale,
        window or NO_WINDOW, split_keys, num_splits, q.stride(0), q.stride(1), *_cache_strides(k_cache, v_cache), tables.stride(0),
        dim, HEADS=heads, GROUP=group, BLOCK_KEYS=BLOCK_KEYS, BLOCK_D=block_d)
    _merge_splits_kernel[(rows, heads)](
        row_pos, part_max, part_sum, part_acc, out, window or NO_WINDOW, split_keys, num_splits, out.stride(0),
        out.stride(1), dim,
        HEADS=heads, BLOCK_D=block_d)
    return out
