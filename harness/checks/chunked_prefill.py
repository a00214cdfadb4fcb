"""chunked_prefill: other max_num_batched_tokens budgets, which cut prefills into other chunks."""
from __future__ import annotations

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    budgets: list[PositiveInt] = Field(default=[8, 32], min_length=1)
    batch_size: PositiveInt = 4


@register(Params, needs=("batch", "max_num_batched_tokens"), control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle alone under the model's token budget vs alone and in a batch under each other budget."""
    needle = ctx.needle()
    reference = ctx.alone(ctx.llm(), needle)
    candidates = []
    for budget in params.budgets:
        llm = ctx.llm(max_num_batched_tokens=budget)
        candidates.append(Candidate(label=f"max_num_batched_tokens={budget} alone",
                                    observation=ctx.alone(llm, needle)))
        position, seen = ctx.among_neighbours(llm, needle, params.batch_size)
        candidates.append(Candidate(label=f"max_num_batched_tokens={budget} batch={params.batch_size} "
                                          f"pos={position}", observation=seen))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
