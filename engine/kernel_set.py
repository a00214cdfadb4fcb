"""The kernel variant an engine uses for each op, chosen once from its mode, device and dtype."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from bi_bench.kernels import KernelError, KernelVariant, select
from bi_bench.kernels.registry import MODES, OPS


@dataclass(frozen=True)
class KernelSet:
    """One variant per op of kernels.registry.OPS (`choose` fills the fields from OPS: they cannot drift apart)."""

    matmul: KernelVariant
    rmsnorm: KernelVariant
    attention: KernelVariant
    log_softmax: KernelVariant
    all_reduce: KernelVariant
    pointwise: KernelVariant

    @classmethod
    def choose(cls, device: str, dtype: torch.dtype, mode: str, overrides: dict[str, str] | None = None) -> KernelSet:
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(OPS)
        if unknown:
            raise KernelError(f"kernels: unknown op {sorted(unknown)[0]!r}; ops: {', '.join(OPS)}")
        # tp-invariant is batch-invariant within one rank; the cross-rank part lives in the all-reduce and in the
        # fixed K/N chunking of the parallel linears.
        op_mode = "invariant" if mode == "tp-invariant" else mode
        if mode not in MODES:
            select("matmul", device, dtype, mode)  # raises the one-line error naming the modes
        return cls(**{op: select(op, device, dtype, op_mode, overrides.get(op)) for op in OPS})

    def names(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name).name for f in fields(self)}

    @property
    def batch_invariant(self) -> bool:
        return all(getattr(self, f.name).batch_invariant for f in fields(self))

    @property
    def graph_safe(self) -> bool:
        return all(getattr(self, f.name).graph_safe for f in fields(self))
