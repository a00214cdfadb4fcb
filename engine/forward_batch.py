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

    @property
    def one_token_per_seq(self) -> bool:
        """Every sequence brings one token (decode): the steps CUDA graphs are captured for."""
        return len(self.input_ids) == len(self.context_lens)

    def padded(self, num_seqs: int, padding_block: int, width: int) -> StepInputs:
        """This one-token-per-sequence step with sequences appended up to `num_seqs` and tables `width` wide.

        Each appended sequence is one token at position 0 of `padding_block`, which the block manager never
        hands out: it writes no real sequence's KV, and attends to nothing but itself.
        """
        extra = num_seqs - len(self.input_ids)
        tables = [table + [-1] * (width - len(table)) for table in self.block_tables]
        tables += [[padding_block] + [-1] * (width - 1)] * extra
        first = self.query_start[-1] + 1
        return StepInputs(self.input_ids + [0] * extra, self.positions + [0] * extra,
                          self.slots + [padding_block * self.block_size] * extra,
                          self.query_start + list(range(first, first + extra)), self.context_lens + [1] * extra,
                          tables, self.block_size, self.logit_rows)

    def build(self, device: str) -> tuple[torch.Tensor, ForwardBatch]:
        tables = to_device(self.block_tables, torch.int32, device)
        batch = ForwardBatch(
            positions=to_device(self.positions, torch.int64, device),
            slot_mapping=to_device(self.slots, torch.int64, device),
            attention=AttentionMetadata(self.query_start, self.context_lens, tables, self.block_size),
        )
        return to_device(self.input_ids, torch.int64, device), batch


def to_device(values: list, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A tensor of `values` on `device`; to CUDA through pinned memory, without waiting for the copy."""
    host = torch.tensor(values, dtype=dtype)
    return host if device == "cpu" else host.pin_memory().to(device, non_blocking=True)
