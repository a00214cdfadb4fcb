"""prefix_cache: cold vs warm cache, a prefix shared with an earlier prompt, and caching switched off."""
from __future__ import annotations

from bi_bench.harness.checks.context import CaseContext
from bi_bench.harness.checks.registry import CheckParams, register
from bi_bench.harness.results.base import PositiveInt
from bi_bench.harness.results.observations import Candidate, Group

FULL_BLOCKS = 2  # the needle spans at least this many full KV blocks, so there is a prefix to reuse


class Params(CheckParams):
    trials: PositiveInt = 2


@register(Params, needs=("batch", "reset_prefix_cache", "enable_prefix_caching"),
          control=True)
def run(ctx: CaseContext, params: Params) -> Group:
    """The needle on a cold cache vs again on a warm one, after a prompt sharing its first blocks, and uncached."""
    llm = ctx.llm()
    needle = _needle(ctx)
    reference = ctx.alone(llm, needle)
    candidates = [Candidate(label="warm", observation=ctx.alone(llm, needle, warm=True))]
    full_blocks = len(needle) // ctx.block_size
    for trial in range(params.trials):
        shared = ctx.rng.randint(1, full_blocks) * ctx.block_size
        ctx.alone(llm, needle[:shared] + ctx.needle())  # cold: leaves the shared blocks cached
        seen = ctx.alone(llm, needle, warm=True)
        candidates.append(Candidate(label=f"shared prefix={shared} trial={trial}", observation=seen))
    uncached = ctx.llm(enable_prefix_caching=False)
    candidates.append(Candidate(label="cache off", observation=ctx.alone(uncached, needle)))
    return Group(prompt_token_ids=needle, reference=reference, candidates=candidates)


def _needle(ctx: CaseContext) -> list[int]:
    """Ends a few tokens past a block boundary: a warm run then prefills only those few rows, as in chat turns."""
    drawn = ctx.needle(min_len=FULL_BLOCKS * ctx.block_size + 1)
    full = (len(drawn) - 1) // ctx.block_size * ctx.block_size
    return drawn[:full + ctx.rng.randint(1, max(1, ctx.block_size // 4))]
