from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bi_bench.engine.distributed.parallel_state import TensorParallelGroup, current_group
from bi_bench.engine.distributed.sharding import sharded_parameter
from bi_bench.engine.layers.linear import column_tiled
from bi_bench.kernels import KernelVariant


class VocabParallelEmbedding(nn.Module):
    """Each rank holds a contiguous slice of the vocabulary's rows."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.group: TensorParallelGroup = current_group()
        self.weight = sharded_parameter((vocab_size, hidden_size), 0, self.group)
        self.rows_per_rank = vocab_size // self.group.size

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.group.size == 1:
            return F.embedding(input_ids, self.weight)
        local = (input_ids - self.group.rank * self.rows_per_rank).clamp(0, self.rows_per_rank - 1)
        # Gather and pick each token's row from its owning rank: exact, where summing masked rows could
        # turn a -0.0 into +0.0.
        gathered = torch.stack(self.group.gather(F.embedding(local, self.weight)))
        owner = input_ids // self.rows_per_rank
        return gathered[owner, torch.arange(len(input_ids), device=input_ids.device)]


class ParallelLMHead(nn.Module):
    """Vocabulary-parallel logits, gathered whole on every rank; in the model dtype, or fp32 when asked for."""

    def __init__(self, vocab_size: int, hidden_size: int, matmul: KernelVariant, fp32: bool) -> None:
        super().__init__()
        self.group: TensorParallelGroup = current_group()
        self.weight = sharded_parameter((vocab_size, hidden_size), 0, self.group)
        self.matmul = matmul
        self.fp32 = fp32
        self._fp32_weight: torch.Tensor | None = None

    def refresh(self) -> None:
        """Call after the weight changes."""
        self._fp32_weight = self.weight.float() if self.fp32 and self.weight.dtype != torch.float32 else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.fp32:
            hidden = hidden.float()
            weight = weight if self._fp32_weight is None else self._fp32_weight
        local = column_tiled(self.matmul, hidden, weight, None, self.group.local_chunks)
        return local if self.group.size == 1 else torch.cat(self.group.gather(local), dim=-1)
