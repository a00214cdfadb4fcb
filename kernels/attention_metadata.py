"""What a paged attention kernel needs to know about the sequences packed into one step."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class DeviceRows:
    """Each query row's sequence index and cache position, as int32 tensors [T] on the kernel's device."""

    seq: torch.Tensor
    pos: torch.Tensor


@dataclass
class AttentionMetadata:
    """Queries of B sequences packed along the token dim; keys and values already written to the cache.

    Sequence b owns query rows query_start[b]:query_start[b+1]; its cache holds context_lens[b] tokens
    (this step's included), so its j-th query of n_q sits at position context_lens[b] - n_q + j and
    attends to cache positions 0..that position (causal). A kernel's `window` argument (a sliding-window
    layer's) narrows that to the last `window` positions: a query at p sees max(0, p + 1 - window)..p.
    """

    query_start: list[int]
    context_lens: list[int]
    block_tables: torch.Tensor  # int32 [B, max_blocks]; -1 pads
    block_size: int
    # Kernels memoize per-step layouts here: every layer of a step sees the same metadata.
    plans: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    # When set, kernels take each row's sequence and position from here and context_lens only bound the lengths:
    # a captured CUDA graph replays one metadata for every step of its batch size.
    device_rows: DeviceRows | None = field(default=None, repr=False, compare=False)

    @property
    def num_seqs(self) -> int:
        return len(self.context_lens)

    def query_lens(self) -> list[int]:
        return [self.query_start[b + 1] - self.query_start[b] for b in range(self.num_seqs)]

    def subset(self, seqs: list[int]) -> tuple[torch.Tensor, AttentionMetadata]:
        """The query rows of sequences `seqs` (in that order), and the metadata of those sequences alone."""
        rows = [r for b in seqs for r in range(self.query_start[b], self.query_start[b + 1])]
        starts = [0]
        for b in seqs:
            starts.append(starts[-1] + self.query_start[b + 1] - self.query_start[b])
        return torch.tensor(rows, dtype=torch.int64), AttentionMetadata(
            starts, [self.context_lens[b] for b in seqs], self.block_tables[seqs], self.block_size)
