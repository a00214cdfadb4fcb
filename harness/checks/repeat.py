"""repeat: the same batch run again, on the same engine and on a freshly built one."""
from __future__ import annotations

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    runs: int = Field(default=3, ge=2, le=1000)
    batch_size: PositiveInt = 4


# Run-to-run determinism holds in default mode too on fixed shapes: not a control.
@register(Params, needs=("batch",), control=False)
def run(ctx: CaseContext, params: Params) -> Group:
    """One batch run `runs` times on one engine and once on a new engine."""
    llm = ctx.llm()
    needle, neighbours, position = ctx.batch(params.batch_size)
    reference = ctx.in_batch(llm, needle, neighbours, position)
    candidates = []
    for attempt in range(1, params.runs - 1):
        candidates.append(Candidate(label=f"run {attempt + 1}",
                                    observation=ctx.in_batch(llm, needle, neighbours, position)))
    fresh = ctx.in_batch(ctx.fresh_llm(), needle, neighbours, position)
    candidates.append(Candidate(label="fresh engine", observation=fresh))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
