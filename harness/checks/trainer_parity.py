"""trainer_parity: the sampler's logprobs vs the trainer's recompute of the same tokens, bit for bit."""
from __future__ import annotations

from bi_bench.engine import trainer_logprobs, trainer_model
from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group, Observation


class Params(CheckParams):
    batch_size: PositiveInt = 4


@register(Params, needs=("batch", "score", "trainer"), control=False)
def run(ctx: CaseContext, params: Params) -> Group:
    """Sampled logprobs (needle in a batch) vs score() and vs an unmodified HF model's forward."""
    llm = ctx.llm()
    needle, neighbours, position = ctx.batch(params.batch_size)
    sampled = ctx.needle_output(llm, needle, neighbours, position)
    completion = list(sampled.token_ids)
    scored = ctx.score(llm, [(needle, completion)], ctx.sampling, 0)
    recomputed = trainer_logprobs(trainer_model(llm), llm, needle, completion, ctx.sampling)
    return Group(prompt_token_ids=needle, reference=Observation(token_ids=completion, logprobs=list(sampled.logprobs)),
                 reference_raw_logprobs=list(sampled.raw_logprobs),
                 candidates=[Candidate(label="score()", observation=scored),
                             Candidate(label="hf trainer", observation=Observation(token_ids=completion,
                                                                                   logprobs=recomputed))])
