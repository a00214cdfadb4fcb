"""tp: the needle at the case's tensor-parallel degree vs at TP=1."""
from __future__ import annotations

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    batch_size: PositiveInt = 4


# Batch-invariant kernels alone do not make TP=N equal TP=1: only tp-invariant mode claims that.
@register(Params, needs=("batch", "tensor_parallel_size"), control=True, needs_tp=True,
          claim_modes=("tp-invariant",))
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle at TP>1, alone and in a batch, vs alone at TP=1."""
    sharded = ctx.llm()
    needle = ctx.needle()
    reference = ctx.alone(ctx.llm(tensor_parallel_size=1), needle)
    candidates = [Candidate(label="tp alone", observation=ctx.alone(sharded, needle))]
    position, seen = ctx.among_neighbours(sharded, needle, params.batch_size)
    candidates.append(Candidate(label=f"tp batch={params.batch_size} pos={position}", observation=seen))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)
