"""threads: one batch at several CPU thread counts, which split the CPU work differently (in-process backends:
torch.set_num_threads on the same engine; servers: one server per count)."""
from __future__ import annotations

import contextlib
from typing import Annotated

from pydantic import Field

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group, Observation

ThreadCount = Annotated[int, Field(ge=1, le=1024)]


class Params(CheckParams):
    thread_counts: list[ThreadCount] = Field(default=[1, 2, 4], min_length=2)
    batch_size: PositiveInt = 4


# Measured on a 2-core AVX2 EPYC in fp32, the same batch at 1 thread vs 2, 3, 5, 8 and 16: default mode changed
# bits (by 1e-6 to 2e-5 in logprob) for up to 5 of 20 random:tiny-qwen3 needles and up to 2 of 4 smollm2-135m
# needles per batch size (1, 4, 13), and the same bits at every count for the rest: a control that may not diverge.
@register(Params, needs=("batch", "threads"), control=False)
def run(ctx: CaseContext, params: Params) -> Group:
    """One batch at the first thread count vs at each other count (default mode seldom diverges: no control)."""
    needle, neighbours, position = ctx.batch(params.batch_size)

    def at(count: int) -> Observation:
        with ctx.pool.backend.threads(count) as settings:
            if not settings:  # in-process: the case's own engine, now running at `count` threads
                return ctx.in_batch(ctx.llm(), needle, neighbours, position)
            with contextlib.closing(ctx.fresh_llm(**settings)) as llm:  # a server per count, one alive at a time
                return ctx.in_batch(llm, needle, neighbours, position)

    first, *others = params.thread_counts
    reference = at(first)
    candidates = [Candidate(label=f"threads={count} batch={params.batch_size} pos={position}", observation=at(count))
                  for count in others]
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)

