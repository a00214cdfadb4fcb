"""Engine behaviour in default mode: scheduling settings change nothing a user can see, score() agrees."""
from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from bi_bench.engine import LLM, SamplingParams

from needle import bitwise_equal

GREEDY = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)


def prompts_for(llm: LLM, count: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    vocab = llm.engine.source.config.vocab_size
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(5, 60))] for _ in range(count)]


@dataclass(frozen=True)
class Passes:
    cold: list[list[int]]  # greedy tokens of the first pass over the prompts
    warm: list[list[int]]  # the same prompts again, on the same engine
    warm_cached_tokens: int  # prompt tokens the second pass took from the prefix cache


def greedy_passes(model: str, prompts: list[list[int]], **engine) -> Passes:
    llm = LLM(model, dtype="float32", **engine)
    cold = [o.token_ids for o in llm.generate(prompts, GREEDY)]
    seqs = [llm.engine.add_request(p, GREEDY) for p in prompts]
    llm.engine.run_until_done()
    if "num_kv_blocks" in engine:
        assert llm.engine.scheduler.num_preemptions > 0
    return Passes(cold, [s.completion_token_ids for s in seqs], sum(s.num_cached_tokens for s in seqs))


SETTINGS = [
    dict(enable_prefix_caching=False),
    dict(max_num_batched_tokens=32),
    dict(max_num_batched_tokens=64),
    dict(max_num_batched_tokens=512),
    dict(num_kv_blocks=12),
]


@pytest.mark.parametrize("model", ["random:tiny-qwen3", pytest.param("smollm2-135m", marks=pytest.mark.slow)])
def test_scheduling_settings_give_same_greedy_tokens(model: str) -> None:
    prompts = prompts_for(LLM(model, dtype="float32"), 8)
    prompts += [prompts[0][:40] + [5, 6, 7]]  # shares a cached prefix with the first prompt
    reference = greedy_passes(model, prompts)
    assert reference.warm_cached_tokens > 0
    assert reference.warm == reference.cold
    for setting in SETTINGS:
        passes = greedy_passes(model, prompts, **setting)
        assert passes.cold == reference.cold and passes.warm == reference.cold, setting
        caching = setting.get("enable_prefix_caching", True)
        assert (passes.warm_cached_tokens > 0) == caching, (setting, passes.warm_cached_tokens)


@pytest.mark.parametrize("model", ["random:tiny-qwen3", pytest.param("smollm2-135m", marks=pytest.mark.slow)])
def test_score_matches_generate_logprobs(model: str) -> None:
    llm = LLM(model, dtype="float32")
    params = SamplingParams(temperature=0.8, top_k=50, top_p=0.9, max_tokens=12, seed=3, ignore_eos=True)
    prompts = prompts_for(llm, 4)
    outputs = llm.generate(prompts, params)
    scores = llm.score(prompts, [o.token_ids for o in outputs], params)
    for out, score in zip(outputs, scores):
        assert len(score.logprobs) == len(out.logprobs)
        assert max(abs(a - b) for a, b in zip(score.logprobs, out.logprobs)) < 1e-4
        assert max(abs(a - b) for a, b in zip(score.raw_logprobs, out.raw_logprobs)) < 1e-4


def test_prefix_cache_is_hit_and_keyed_by_tokens() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32", block_size=16)
    prompt = list(range(10, 60))
    llm.generate([prompt], GREEDY)
    warm = llm.engine.add_request(prompt, GREEDY)
    llm.engine.run_until_done()
    assert warm.num_cached_tokens == 48  # three full blocks; the last token is always computed
    other = llm.engine.add_request([11] + prompt[1:], GREEDY)
    llm.engine.run_until_done()
    assert other.num_cached_tokens == 0


def test_seeded_sampling_same_alone_and_with_31_others() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32", mode="invariant")
    params = SamplingParams(temperature=0.8, max_tokens=16, seed=99, ignore_eos=True)
    prompts = prompts_for(llm, 32, seed=5)
    together = llm.generate(prompts, params)
    alone = llm.generate([prompts[17]], params)[0]
    assert alone.token_ids == together[17].token_ids
    assert bitwise_equal(alone.logprobs, together[17].logprobs)


def test_seed_changes_the_draws() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32")
    prompt = prompts_for(llm, 1)
    draws = {tuple(llm.generate(prompt, SamplingParams(temperature=1.0, max_tokens=8, seed=s))[0].token_ids)
             for s in range(4)}
    assert len(draws) > 1


def test_stop_tokens_and_max_tokens_finish_requests() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32")
    prompt = prompts_for(llm, 1)
    first = llm.generate(prompt, GREEDY)[0]
    assert first.finish_reason == "length" and len(first.token_ids) == 16
    stop_at = first.token_ids[3]
    stopped = llm.generate(prompt, SamplingParams(temperature=0.0, max_tokens=16, stop_token_ids=(stop_at,)))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == first.token_ids[: first.token_ids.index(stop_at) + 1]


def test_string_prompts_need_a_tokenizer() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32")
    with pytest.raises(ValueError, match="no tokenizer"):
        llm.generate(["hello"], GREEDY)


@pytest.mark.slow
def test_smollm2_text_round_trip() -> None:
    llm = LLM("smollm2-135m", dtype="float32")
    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0.0, max_tokens=4))[0]
    assert out.prompt_token_ids == llm.tokenizer("The capital of France is")["input_ids"]
    assert "Paris" in out.text
