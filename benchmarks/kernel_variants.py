"""Per-kernel microbenchmarks: every matmul variant by M bucket, every attention variant by context length
(decode: 16 sequences x 1 query; prefill: 1 sequence, every position a query).

    python benchmarks/kernel_variants.py --dtype float32 --out benchmarks/results/kernels.json

Times are medians of repeated calls in this one process; the ratio to the `torch` variant is the result.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from bi_bench.kernels import AttentionMetadata, variants

M_BUCKETS = (1, 4, 16, 64, 256, 1024)
CONTEXTS = (64, 256, 1024)
HIDDEN, INTERMEDIATE = 576, 1536  # smollm2-135m's MLP
HEADS, KV_HEADS, HEAD_DIM, BLOCK = 9, 3, 64, 16
DECODE_SEQS = 16


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def bench_matmul(dtype: torch.dtype, repeats: int) -> list[dict]:
    # a Parameter, as in the engine: variants may cache a converted copy of a weight
    weight = torch.nn.Parameter(torch.randn(INTERMEDIATE, HIDDEN).to(dtype), requires_grad=False)
    rows = []
    for m in M_BUCKETS:
        x = torch.randn(m, HIDDEN).to(dtype)
        timings = {v.name: median_ms(lambda: v.fn(x, weight), repeats)
                   for v in variants("matmul") if v.supports("cpu", dtype)}
        rows.append({"m": m, "ms": timings, "vs_torch": {k: t / timings["torch"] for k, t in timings.items()}})
    return rows


def attention_batch(context: int, seqs: int, queries: int, dtype: torch.dtype
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, AttentionMetadata]:
    """`seqs` sequences of `context` cached tokens, the last `queries` of each being this step's queries."""
    blocks_per_seq = -(-context // BLOCK)
    cache_shape = (seqs * blocks_per_seq, BLOCK, KV_HEADS, HEAD_DIM)
    k, v = torch.randn(cache_shape).to(dtype), torch.randn(cache_shape).to(dtype)
    tables = torch.arange(seqs * blocks_per_seq, dtype=torch.int32).view(seqs, blocks_per_seq)
    meta = AttentionMetadata([b * queries for b in range(seqs + 1)], [context] * seqs, tables, BLOCK)
    return torch.randn(seqs * queries, HEADS, HEAD_DIM).to(dtype), k, v, meta


def bench_attention(dtype: torch.dtype, repeats: int) -> list[dict]:
    rows = []
    for phase, context in [("decode", c) for c in CONTEXTS] + [("prefill", c) for c in CONTEXTS]:
        seqs, queries = (DECODE_SEQS, 1) if phase == "decode" else (1, context)
        q, k, v, meta = attention_batch(context, seqs, queries, dtype)
        timings = {}
        for variant in variants("attention"):
            if variant.supports("cpu", dtype):
                # a fresh metadata object per call: kernels may memoize per-step layouts on it
                timings[variant.name] = median_ms(
                    lambda: variant.fn(q, k, v, AttentionMetadata(meta.query_start, meta.context_lens,
                                                                  meta.block_tables, BLOCK), HEAD_DIM ** -0.5),
                    repeats)
        rows.append({"phase": phase, "context": context, "seqs": seqs, "ms": timings,
                     "vs_torch_sdpa": {k: t / timings["torch_sdpa"] for k, t in timings.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    report = {"dtype": args.dtype, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "matmul": bench_matmul(dtype, args.repeats), "attention": bench_attention(dtype, args.repeats)}
    for row in report["matmul"]:
        print(f"matmul M={row['m']:>5}: "
              + "  ".join(f"{k} {row['ms'][k]:.2f} ms ({v:.2f}x)" for k, v in row["vs_torch"].items()))
    for row in report["attention"]:
        print(f"attention {row['phase']:<7} ctx={row['context']:>5} x{row['seqs']:<3}: "
              + "  ".join(f"{k} {row['ms'][k]:.1f} ms ({v:.2f}x)" for k, v in row["vs_torch_sdpa"].items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
