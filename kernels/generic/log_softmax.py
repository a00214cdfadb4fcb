"""log_softmax variants (fp32 result) over the vocabulary in torch ops."""
from __future__ import annotations

import torch

from bi_bench.kernels.generic.tiling import split_count_from_rows
from bi_bench.kernels.registry import register


@register("log_softmax", "torch", devices=("cpu", "cuda"), batch_invariant=False,
          description="torch.log_softmax on the whole batch", preferred_for=("default",), fallback=True)
def log_softmax_torch(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x.float(), dim=-1)


@register("log_softmax", "split", devices=("cpu", "cuda"), batch_invariant=False,
          description="vocabulary split into partial log-sum-exps whose count follows M (negative control)")
def log_softmax_split(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    chunks = x.chunk(split_count_from_rows(x.shape[0]) * 3, dim=-1)
    partial_lse = torch.stack([torch.logsumexp(c, dim=-1) for c in chunks], dim=-1)
    return x - torch.logsumexp(partial_lse, dim=-1, keepdim=True)
