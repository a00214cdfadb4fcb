"""The needle battery: one request, alone and under every kind of neighbour and engine setting."""
from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.threads import torch_threads
from bi_bench.harness.results.metrics import same_bits

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=8, seed=1234, ignore_eos=True)


def bitwise_equal(a: Sequence[float], b: Sequence[float]) -> bool:
    """Bit for bit: float == would take -0.0 for 0.0 (and never NaN for NaN)."""
    return len(a) == len(b) and all(map(same_bits, a, b))


@dataclass(frozen=True, eq=False)
class Observation:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    cached_tokens: int = 0  # prompt tokens taken from the prefix cache; not compared

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Observation):
            return NotImplemented
        return self.token_ids == other.token_ids and bitwise_equal(self.logprobs, other.logprobs)


def observe(out) -> Observation:
    return Observation(tuple(out.token_ids), tuple(out.logprobs))


def generate(llm: LLM, prompts: list[list[int]], params: list[SamplingParams]) -> list[Observation]:
    """llm.generate, keeping what only the sequences know: how much of each prompt the prefix cache gave."""
    seqs = [llm.engine.add_request(prompt, p) for prompt, p in zip(prompts, params)]
    llm.engine.run_until_done()
    return [Observation(tuple(s.completion_token_ids), tuple(s.logprobs), s.num_cached_tokens) for s in seqs]


def random_prompt(rng: random.Random, vocab: int, low: int, high: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(rng.randint(low, high))]


def needle_in_batch(llm: LLM, needle: list[int], batch_size: int, rng: random.Random, vocab: int,
                    max_len: int) -> Observation:
    neighbours = [random_prompt(rng, vocab, 1, max_len) for _ in range(batch_size - 1)]
    position = rng.randrange(batch_size)
    prompts = neighbours[:position] + [needle] + neighbours[position:]
    neighbour_params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=rng.randint(1, 12), seed=7)
    params = [PARAMS if i == position else neighbour_params for i in range(batch_size)]
    return generate(llm, prompts, params)[position]


def run_battery(model: str, dtype: str, mode: str, batch_sizes: tuple[int, ...], max_len: int,
                needle_len: tuple[int, int], preempt_blocks: int, tensor_parallel_size: int = 1,
                threads: tuple[int, ...] = (), max_model_len: int = 256, device: str = "cpu") -> dict[str, Observation]:
    """Observations of the needle under each setting; 'alone' is the reference.

    max_len bounds the neighbours' prompts, needle_len the needle's (more than two KV blocks, so that
    the prefix-cache legs reuse blocks); max_model_len must hold the needle and its completion. With `threads`,
    the reference runs at one thread, the needle alone once more at each count, and every other leg at the next
    count in turn: batch and thread count vary together.
    """
    if threads:
        with torch_threads(1):
            return _battery_over_threads(model, dtype, mode, batch_sizes, max_len, needle_len, preempt_blocks,
                                         tensor_parallel_size, threads, max_model_len)
    return _battery(model, dtype, mode, batch_sizes, max_len, needle_len, preempt_blocks, tensor_parallel_size,
                    contextlib.nullcontext, max_model_len, device)


def _battery_over_threads(model: str, dtype: str, mode: str, batch_sizes: tuple[int, ...], max_len: int,
                          needle_len: tuple[int, int], preempt_blocks: int, tensor_parallel_size: int,
                          threads: tuple[int, ...], max_model_len: int) -> dict[str, Observation]:
    counts = itertools.cycle(threads)
    seen = _battery(model, dtype, mode, batch_sizes, max_len, needle_len, preempt_blocks, tensor_parallel_size,
                    lambda: torch_threads(next(counts)), max_model_len)
    llm = LLM(model, dtype=dtype, mode=mode, max_num_seqs=64, max_model_len=max_model_len)
    needle = _needle(llm, random.Random(0), needle_len)
    for count in threads:
        with torch_threads(count):
            seen[f"alone_{count}_threads"] = generate(llm, [needle], [PARAMS])[0]
    llm.close()
    return seen


def _needle(llm: LLM, rng: random.Random, needle_len: tuple[int, int]) -> list[int]:
    needle = random_prompt(rng, llm.engine.source.config.vocab_size, *needle_len)
    assert len(needle) > 2 * llm.engine.config.block_size, "the needle must fill more than two KV blocks"
    return needle


def _battery(model: str, dtype: str, mode: str, batch_sizes: tuple[int, ...], max_len: int,
             needle_len: tuple[int, int], preempt_blocks: int, tensor_parallel_size: int,
             leg_threads, max_model_len: int, device: str = "cpu") -> dict[str, Observation]:
    rng = random.Random(0)
    # max_model_len bounds each engine's KV cache: two xdist workers each hold a few engines at once
    engine = dict(dtype=dtype, mode=mode, max_num_seqs=64, max_model_len=max_model_len,
                  tensor_parallel_size=tensor_parallel_size, device=device)
    llm = LLM(model, **engine)
    vocab = llm.engine.source.config.vocab_size
    block_size = llm.engine.config.block_size
    needle = _needle(llm, rng, needle_len)
    seen = {"alone": generate(llm, [needle], [PARAMS])[0]}
    with leg_threads():
        seen["prefix_cache_warm"] = generate(llm, [needle], [PARAMS])[0]
    for size in batch_sizes:
        llm.engine.block_manager.reset_prefix_cache()  # the needle's whole prefill runs inside the batch
        with leg_threads():
            seen[f"batch_{size}"] = needle_in_batch(llm, needle, size, rng, vocab, max_len)
    with leg_threads():
        seen["prefix_cache_warm_in_batch"] = needle_in_batch(llm, needle, 4, rng, vocab, max_len)
    for name in ("prefix_cache_warm", "prefix_cache_warm_in_batch"):
        assert seen[name].cached_tokens >= 2 * block_size, f"{name} did not reuse the needle's blocks"
    with leg_threads():
        score = llm.score([needle], [list(seen["alone"].token_ids)], PARAMS)[0]
    seen["score"] = Observation(seen["alone"].token_ids, tuple(score.logprobs))
    llm.close()  # each engine stops its tensor-parallel workers as soon as it is done
    del llm
    no_prefix = LLM(model, enable_prefix_caching=False, **engine)
    with leg_threads():
        seen["no_prefix_cache"] = needle_in_batch(no_prefix, needle, 4, rng, vocab, max_len)
    no_prefix.close()
    for budget in (32, 2048):
        chunked = LLM(model, max_num_batched_tokens=budget, **engine)
        with leg_threads():
            seen[f"max_batched_tokens_{budget}"] = needle_in_batch(chunked, needle, 6, rng, vocab, max_len)
        chunked.close()
    tight = LLM(model, num_kv_blocks=preempt_blocks, **engine)
    with leg_threads():
        seen["preemption"] = needle_in_batch(tight, needle, 8, rng, vocab, max_len)
    tight.close()
    assert tight.engine.scheduler.num_preemptions > 0, "the preemption setting did not preempt"
    return seen
