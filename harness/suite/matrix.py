"""A suite's matrix for one model: TP degree x mode x kernel-variant combination x check -> cases."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from bi_bench.harness.checks import CHECKS, CheckParams
from bi_bench.harness.suite.load import LoadedSuite
from bi_bench.harness.suite.schema import ModelSpec, Suite

KernelChoice = tuple[tuple[str, str], ...]  # requested variant per op; ops not named use the mode's pick


@dataclass(frozen=True)
class Setting:
    """One engine configuration of the matrix: mode x TP degree x kernel-variant combination."""

    mode: str
    tp: int
    kernels: KernelChoice = ()

    def engine_args(self) -> dict[str, Any]:
        return dict(mode=self.mode, tensor_parallel_size=self.tp, kernels=dict(self.kernels))

    @property
    def label(self) -> str:
        return "/".join([self.mode, f"tp{self.tp}", *(f"{op}={name}" for op, name in self.kernels)])


@dataclass(frozen=True)
class CaseSpec:
    index: int
    check: str
    mode: str
    tp: int
    kernels: KernelChoice
    params: CheckParams

    @property
    def id(self) -> str:
        variants = ",".join(f"{op}={name}" for op, name in self.kernels)
        return f"{self.check}/{self.mode}/tp{self.tp}" + (f"/{variants}" if variants else "")

    @property
    def control(self) -> bool:
        return CHECKS[self.check].is_control(self.params)

    @property
    def setting(self) -> Setting:
        return Setting(self.mode, self.tp, self.kernels)


def settings(suite: Suite, model: ModelSpec) -> list[Setting]:
    """Every engine configuration the model's cases run under, in matrix order."""
    return [Setting(mode, tp, combo) for tp in model.tp for mode in suite.modes
            for combo in _combinations(suite.kernels.get(mode, {}))]


def expand(loaded: LoadedSuite, model: ModelSpec) -> list[CaseSpec]:
    cases = [(setting, name, params) for setting in settings(loaded.suite, model)
             for name, params in loaded.checks.items() if setting.tp > 1 or not CHECKS[name].needs_tp]
    return [CaseSpec(index, name, s.mode, s.tp, s.kernels, params) for index, (s, name, params) in enumerate(cases)]


def _combinations(axes: dict[str, list[str]]) -> list[KernelChoice]:
    ops = list(axes)
    return [tuple(zip(ops, names)) for names in itertools.product(*(axes[op] for op in ops))]


@dataclass(frozen=True)
class Shard:
    """The shards of a run that a file holds, labelled "I/N" (1-based), or "I,J/N" once merged. Shard I holds
    every N-th case from the I-th, so each gets a mix of settings."""

    indices: tuple[int, ...]
    count: int

    @classmethod
    def parse(cls, label: str) -> Shard:
        indices, count = label.split("/")
        return cls(tuple(int(index) for index in indices.split(",")), int(count))

    def __str__(self) -> str:
        return f"{','.join(map(str, self.indices))}/{self.count}"

    def cases(self, cases: list[CaseSpec]) -> list[CaseSpec]:
        return [case for case in cases if case.index % self.count + 1 in self.indices]
