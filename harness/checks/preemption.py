"""preemption: a KV cache so small that requests are preempted and recomputed, vs plenty of cache."""
from __future__ import annotations

from bi_bench.harness.checks.context import CaseContext, Request, Skip
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group


class Params(CheckParams):
    batch_size: PositiveInt = 8
    num_kv_blocks: PositiveInt | None = None  # None: exactly the blocks the batch's prompts fill


@register(Params, needs=("batch", "preemptions", "num_kv_blocks"), control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle alone with plenty of KV cache vs last (first to be preempted) in a batch with too little."""
    needle = ctx.needle()
    reference = ctx.alone(ctx.llm(), needle)
    neighbours = _block_aligned(ctx, ctx.neighbours(params.batch_size - 1, min_len=ctx.block_size))
    blocks = params.num_kv_blocks or _prompt_blocks(ctx, [needle, *(p for p, _ in neighbours)])
    tight = ctx.llm(num_kv_blocks=blocks)
    before = tight.num_preemptions
    seen = ctx.in_batch(tight, needle, neighbours, len(neighbours))
    preemptions = tight.num_preemptions - before
    if not preemptions:
        raise Skip(f"no request was preempted with num_kv_blocks={blocks}; lower it or raise batch_size")
    label = f"num_kv_blocks={blocks} batch={params.batch_size} preemptions={preemptions}"
    return Group(prompt_token_ids=needle, reference=reference, candidates=[Candidate(label=label, observation=seen)])


def _block_aligned(ctx: CaseContext, neighbours: list[Request]) -> list[Request]:
    """Prompts that end on a block boundary need a new block for their first generated token."""
    size = ctx.block_size
    return [(prompt[:len(prompt) // size * size], params) for prompt, params in neighbours]


def _prompt_blocks(ctx: CaseContext, prompts: list[list[int]]) -> int:
    """All prompts fit at once, so the first decode step must preempt; any single request still fits alone."""
    def blocks(tokens: int) -> int:
        return -(-tokens // ctx.block_size)

    longest = max(blocks(len(p) + 2 * ctx.sampling.max_tokens) for p in prompts)
    return max(sum(blocks(len(p)) for p in prompts), longest)
