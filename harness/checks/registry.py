"""Checks by name: each is a function from a case context to one needle's observations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.results.base import Strict
from bi_bench.harness.results.metrics import claims_invariance
from bi_bench.harness.results.observations import Group
from bi_bench.kernels.registry import INVARIANT_MODES


class CheckParams(Strict):
    # Whether this check's default-mode case is a negative control that must diverge; None: the check's own.
    control: bool | None = None


RunFn = Callable[[CaseContext, CheckParams], Group]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    params: type[CheckParams]
    run: RunFn
    control: bool  # in default mode this check shows batch-dependence, so it must diverge there
    needs_tp: bool  # compares TP>1 against TP=1, so it has no case at TP=1
    claim_modes: tuple[str, ...]  # the modes whose engines claim this check's invariance
    needs: tuple[str, ...]  # backend capabilities and settings it uses (bi_bench.harness.backends.base)

    def is_control(self, params: CheckParams) -> bool:
        return self.control if params.control is None else params.control

    def claims(self, mode: str) -> bool:
        return claims_invariance(mode, self.claim_modes)


CHECKS: dict[str, CheckSpec] = {}


def register(params: type[CheckParams], *, control: bool, needs: tuple[str, ...], needs_tp: bool = False,
             claim_modes: tuple[str, ...] = INVARIANT_MODES) -> Callable[[RunFn], RunFn]:
    """Registers a check under its module's name (checks/<name>.py), described by its docstring's first line."""
    def wrap(run: RunFn) -> RunFn:
        name = run.__module__.rsplit(".", 1)[-1]
        description = (run.__doc__ or "").strip().splitlines()[0]
        CHECKS[name] = CheckSpec(name, description, params, run, control, needs_tp, claim_modes, needs)
        return run

    return wrap
