from __future__ import annotations

from dataclasses import dataclass

import torch

from bi_bench.kernels import AttentionMetadata


@dataclass
class ForwardBatch:
    """What one model step needs beyond the token ids: positions, cache slots, attention layout."""

    positions: torch.Tensor  # int64 [T]
    slot_mapping: torch.Tensor  # int64 [T]: flat cache slot each new token's K/V goes to
    attention: AttentionMetadata
