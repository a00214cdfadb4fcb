"""Default-mode CPU attention: each phase through the kernel that is fastest for it on this CPU.

Decode rows (one query, every key cached) go through the row program, which reads the paged cache in place;
prefill and chunked-prefill sequences go through scaled_dot_product_attention, whose blocked GEMMs win on
long prompts (benchmarks/kernel_variants.py). Not batch-invariant: a token's bits depend on which phase it is in.
The fused decoder stack makes the same calls in C++ (csrc/phase_attention.cpp), so prefills run there too.
"""
from __future__ import annotations

import torch

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.generic.attention import attention_sdpa
from bi_bench.kernels.cpu.row_attention import attention_row_program
from bi_bench.kernels.registry import register


def split_by_phase(meta: AttentionMetadata) -> list[tuple[torch.Tensor, AttentionMetadata, bool]]:
    """(query rows, their metadata, is_decode) for the decode sequences and for the prefill sequences."""
    if "phases" not in meta.plans:
        query_lens = meta.query_lens()
        phases = []
        for decode in (True, False):
            seqs = [b for b, n in enumerate(query_lens) if (n == 1) == decode]
            if seqs:
                phases.append((*meta.subset(seqs), decode))
        meta.plans["phases"] = phases
    return meta.plans["phases"]


@register("attention", "cpu_phase_split", devices=("cpu",), batch_invariant=False,
          description="decode rows by the row program, prefill sequences by scaled_dot_product_attention: "
                      "the faster kernel for each phase", preferred_for=("default",))
def attention_phase_split(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float, window: int | None = None) -> torch.Tensor:
    phases = split_by_phase(meta)
    if len(phases) == 1:  # one phase: its kernel takes the batch as it is (rows never interact)
        return (attention_row_program if phases[0][2] else attention_sdpa)(q, k_cache, v_cache, meta, scale, window)
    out = torch.empty_like(q)
    for rows, sub_meta, decode in phases:
        kernel = attention_row_program if decode else attention_sdpa
        out[rows] = kernel(q[rows], k_cache, v_cache, sub_meta, scale, window)
    return out
