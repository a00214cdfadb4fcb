"""batch_size: the needle alone vs in batches of other sizes, at random positions among random-length neighbours."""
from __future__ import annotations

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    batch_sizes: list[PositiveInt] = Field(default=[1, 4, 8], min_length=1)
    trials: PositiveInt = 2


@register(Params, needs=("batch",), control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle alone vs in batches of each size, at a random position among random-length neighbours."""
    llm = ctx.llm()
    needle = ctx.needle()
    reference = ctx.alone(llm, needle)
    candidates = []
    for size in params.batch_sizes:
        for trial in range(params.trials):
            position, seen = ctx.among_neighbours(llm, needle, size)
            candidates.append(Candidate(label=f"batch={size} pos={position} trial={trial}", observation=seen))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
