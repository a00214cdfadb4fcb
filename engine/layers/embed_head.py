from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bi_bench.kernels import KernelVariant


class VocabEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size), requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


class LMHead(nn.Module):
    """Logits in the model dtype, or from an fp32 copy of the weight when `fp32` is asked for."""

    def __init__(self, vocab_size: int, hidden_size: int, matmul: KernelVariant, fp32: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size), requires_grad=False)
        self.matmul = matmul
        self.fp32 = fp32
        self._fp32_weight: torch.Tensor | None = None

    def refresh(self) -> None:
        """Call after the weight changes."""
        self._fp32_weight = self.weight.float() if self.fp32 and self.weight.dtype != torch.float32 else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.fp32:
            return self.matmul.fn(hidden, self.weight)
        weight = self.weight if self._fp32_weight is None else self._fp32_weight
        return self.matmul.fn(hidden.float(), weight)
