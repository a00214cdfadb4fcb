"""The needle battery: one request, alone and under every kind of neighbour and engine setting."""
from __future__ import annotations

import random
from dataclasses import dataclass

from bi_bench.engine import LLM, SamplingParams

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=8, seed=1234, ignore_eos=True)


@dataclass(frozen=True)
class Observation:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]


def observe(out) -> Observation:
    return Observation(tuple(out.token_ids), tuple(out.logprobs))


def random_prompt(rng: random.Random, vocab: int, low: int, high: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(rng.randint(low, high))]


def needle_in_batch(llm: LLM, needle: list[int], batch_size: int, rng: random.Random, vocab: int,
                    max_len: int) -> Observation:
    neighbours = [random_prompt(rng, vocab, 1, max_len) for _ in range(batch_size - 1)]
    position = rng.randrange(batch_size)
    prompts = neighbours[:position] + [needle] + neighbours[position:]
    neighbour_params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=rng.randint(1, 12), seed=7)
    params = [PARAMS if i == position else neighbour_params for i in range(batch_size)]
    return observe(llm.generate(prompts, params)[position])


def run_battery(model: str, dtype: str, mode: str, batch_sizes: tuple[int, ...], max_len: int,
                preempt_blocks: int, tensor_parallel_size: int = 1) -> dict[str, Observation]:
    """Observations of the needle under each setting; 'alone' is the reference."""
    rng = random.Random(0)
    # max_model_len bounds each engine's KV cache: two xdist workers each hold a few engines at once
    engine = dict(dtype=dtype, mode=mode, max_num_seqs=64, max_model_len=256, tensor_parallel_size=tensor_parallel_size)
    llm = LLM(model, **engine)
    vocab = llm.engine.source.config.vocab_size
    needle = random_prompt(rng, vocab, max_len // 2, max_len)
    seen = {"alone": observe(llm.generate([needle], PARAMS)[0])}
    for size in batch_sizes:
        seen[f"batch_{size}"] = needle_in_batch(llm, needle, size, rng, vocab, max_len)
    seen["prefix_cache_warm"] = observe(llm.generate([needle], PARAMS)[0])
    score = llm.score([needle], [list(seen["alone"].token_ids)], PARAMS)[0]
    seen["score"] = Observation(seen["alone"].token_ids, tuple(score.logprobs))
    llm.close()  # each engine stops its tensor-parallel workers as soon as it is done
    del llm
    no_prefix = LLM(model, enable_prefix_caching=False, **engine)
    seen["no_prefix_cache"] = needle_in_batch(no_prefix, needle, 4, rng, vocab, max_len)
    no_prefix.close()
    for budget in (32, 2048):
        chunked = LLM(model, max_num_batched_tokens=budget, **engine)
        seen[f"max_batched_tokens_{budget}"] = needle_in_batch(chunked, needle, 6, rng, vocab, max_len)
        chunked.close()
    tight = LLM(model, num_kv_blocks=preempt_blocks, **engine)
    seen["preemption"] = needle_in_batch(tight, needle, 8, rng, vocab, max_len)
    tight.close()
    assert tight.engine.scheduler.num_preemptions > 0, "the preemption setting did not preempt"
    return seen
