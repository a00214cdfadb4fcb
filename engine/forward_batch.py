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
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None  # (cos, sin) for `positions`, set by the model


@dataclass
class StepInputs:
    """One step's model inputs as plain lists: cheap to send to tensor-parallel workers, built into tensors there."""

    input_ids: list[int]
    positions: list[int]
    slots: list[int]
    query_start: list[int]
    context_lens: list[int]
    block_tables: list[list[int]]  # padded with -1 to one width
    block_size: int
    logit_rows: list[int]  # hidden rows that need logits

    def build(self, device: str) -> tuple[torch.Tensor, ForwardBatch]:
        tables = torch.tensor(self.block_tables, dtype=torch.int32, device=device)
        batch = ForwardBatch(
            positions=torch.tensor(self.positions, device=device),
            slot_mapping=torch.tensor(self.slots, device=device),
            attention=AttentionMetadata(self.query_start, self.context_lens, tables, self.block_size),
        )
        return torch.tensor(self.input_ids, device=device), batch
