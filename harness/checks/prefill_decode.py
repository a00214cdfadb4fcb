"""prefill_decode: logprobs from decoding (generate) vs from one prefill over prompt + completion (score)."""
from __future__ import annotations

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    batch_size: PositiveInt = 4


@register(Params, needs=("batch", "score"), control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle's generated tokens and logprobs vs score() of the same tokens, alone and in a batch."""
    llm = ctx.llm()
    needle = ctx.needle()
    reference = ctx.alone(llm, needle)
    completion = reference.token_ids
    candidates = [Candidate(label="score alone", observation=ctx.score(llm, [(needle, completion)], ctx.sampling, 0))]
    others = [(prompt, ctx.needle()[:p.max_tokens]) for prompt, p in ctx.neighbours(params.batch_size - 1)]
    position = ctx.rng.randrange(params.batch_size)
    batch = [*others[:position], (needle, completion), *others[position:]]
    candidates.append(Candidate(label=f"score batch={params.batch_size} pos={position}",
                                observation=ctx.score(llm, batch, ctx.sampling, position)))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
