"""order: the same batch in other orders."""
from __future__ import annotations

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    batch_size: int = Field(default=8, ge=2, le=4096)
    trials: PositiveInt = 2


# Reordering keeps every kernel's shapes, so even default mode is expected to agree: not a control.
@register(Params, needs=("batch",), control=False)
def run(ctx: CaseContext, params: Params) -> Group:
    """One batch, the needle first, vs the same requests shuffled."""
    llm = ctx.llm()
    needle = ctx.needle()
    neighbours = ctx.neighbours(params.batch_size - 1)
    reference = ctx.in_batch(llm, needle, neighbours, 0)
    candidates = []
    for trial in range(params.trials):
        shuffled = list(neighbours)
        ctx.rng.shuffle(shuffled)
        position = ctx.rng.randrange(params.batch_size)
        seen = ctx.in_batch(llm, needle, shuffled, position)
        candidates.append(Candidate(label=f"shuffled pos={position} trial={trial}", observation=seen))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
