"""Tensor-parallel linears through the engine's matmul variant (at TP=1 they hold the whole weight)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bi_bench.engine.distributed.parallel_state import TensorParallelGroup, current_group
from bi_bench.engine.distributed.sharding import sharded_parameter
from bi_bench.kernels import KernelVariant
from bi_bench.kernels.all_reduce import tree_sum


def column_tiled(matmul: KernelVariant, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 tiles: int) -> torch.Tensor:
    """x @ weight.T + bias computed in `tiles` equal column tiles.

    The BLAS's K order for a column can depend on N, so tp-invariant mode gives every call the same N at any
    TP degree: each rank computes its whole tiles of one global tiling.
    """
    if tiles == 1:
        return matmul.fn(x, weight, bias)
    biases = [None] * tiles if bias is None else bias.chunk(tiles)
    return torch.cat([matmul.fn(x, w, b) for w, b in zip(weight.chunk(tiles), biases)], dim=-1)


class ColumnParallelLinear(nn.Module):
    """Output features split across ranks; each rank returns its slice of y, no communication."""

    def __init__(self, in_features: int, out_features: int, bias: bool, matmul: KernelVariant) -> None:
        super().__init__()
        self.group: TensorParallelGroup = current_group()
        self.weight = sharded_parameter((out_features, in_features), 0, self.group)
        self.bias = sharded_parameter((out_features,), 0, self.group) if bias else None
        self.matmul = matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return column_tiled(self.matmul, x, self.weight, self.bias, self.group.local_chunks)


def shared_input(x: torch.Tensor, linears: Sequence[ColumnParallelLinear]) -> list[torch.Tensor]:
    """x through several column-parallel linears of one matmul variant (q, k and v; gate and up): one kernel
    call where the variant fuses them (the same bits as a call each), one call each otherwise."""
    matmul = linears[0].matmul
    if any(linear.group.local_chunks > 1 for linear in linears):
        return [linear(x) for linear in linears]
    return matmul.linears(x, [linear.weight for linear in linears], [linear.bias for linear in linears])


class RowParallelLinear(nn.Module):
    """Input features split across ranks; partial products are summed across ranks, then the bias added once.

    With K chunks (tp-invariant mode), each chunk's product is separate and the chunks are summed by one fixed
    tree: locally over a rank's consecutive chunks, then across ranks by the all-reduce's rank-ordered tree.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, matmul: KernelVariant) -> None:
        super().__init__()
        self.group: TensorParallelGroup = current_group()
        self.weight = sharded_parameter((out_features, in_features), 1, self.group)
        self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False) if bias else None
        self.matmul = matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = self.group.local_chunks
        partials = [self.matmul.fn(xc.contiguous(), wc.contiguous())
                    for xc, wc in zip(x.chunk(chunks, dim=-1), self.weight.chunk(chunks, dim=-1))]
        out = self.group.reduce(tree_sum(partials))
        return out if self.bias is None else out + self.bias
