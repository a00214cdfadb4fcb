"""A suite's matrix for one model: TP degree x mode x kernel-variant combination x check -> cases."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from bi_bench.harness.checks import CHECKS, CheckParams
from bi_bench.harness.suite import ModelSpec
from bi_bench.harness.suite_loader import LoadedSuite


@dataclass(frozen=True)
class CaseSpec:
    index: int
    check: str
    mode: str
    tp: int
    kernels: tuple[tuple[str, str], ...]  # requested variant per op; ops not named use the mode's pick
    params: CheckParams

    @property
    def id(self) -> str:
        variants = ",".join(f"{op}={name}" for op, name in self.kernels)
        return f"{self.check}/{self.mode}/tp{self.tp}" + (f"/{variants}" if variants else "")

    @property
    def control(self) -> bool:
        return CHECKS[self.check].is_control(self.params)


def expand(loaded: LoadedSuite, model: ModelSpec) -> list[CaseSpec]:
    suite = loaded.suite
    settings = [(tp, mode, combo) for tp in model.tp for mode in suite.modes
                for combo in _combinations(suite.kernels.get(mode, {}))]
    cases = [(tp, mode, combo, name, params) for tp, mode, combo in settings
             for name, params in loaded.checks.items() if tp > 1 or not CHECKS[name].needs_tp]
    return [CaseSpec(index, name, mode, tp, combo, params)
            for index, (tp, mode, combo, name, params) in enumerate(cases)]


def _combinations(axes: dict[str, list[str]]) -> list[tuple[tuple[str, str], ...]]:
    ops = list(axes)
    return [tuple(zip(ops, names)) for names in itertools.product(*(axes[op] for op in ops))]


def shard(cases: list[CaseSpec], index: int, count: int) -> list[CaseSpec]:
    """Shard `index` of `count` (1-based): every count-th case, so each shard gets a mix of settings."""
    return [case for case in cases if case.index % count == index - 1]
