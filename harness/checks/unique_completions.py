"""unique_completions: N greedy samples of one prompt spread over varied batches; how many distinct completions."""
from __future__ import annotations

import dataclasses

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    samples: int = Field(default=8, ge=2, le=10_000)
    batch_sizes: list[PositiveInt] = Field(default=[1, 4, 12], min_length=1)


@register(Params, needs=("batch",), control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle at temperature 0, sampled N times in batches of cycling sizes (distinct_completions counts)."""
    llm = ctx.llm()
    needle = ctx.needle()
    greedy = dataclasses.replace(ctx.sampling, temperature=0.0)
    runs = []
    for sample in range(params.samples):
        size = params.batch_sizes[sample % len(params.batch_sizes)]
        position, seen = ctx.among_neighbours(llm, needle, size, greedy)
        runs.append(Candidate(label=f"sample={sample} batch={size} pos={position}", observation=seen))
    return Group(prompt_token_ids=needle, reference=runs[0].observation, candidates=runs[1:])
