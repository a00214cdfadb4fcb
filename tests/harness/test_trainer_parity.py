"""Sampler == trainer: the engine's logprobs vs score() and vs an unmodified HF model recomputing them."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine import k3_kl, trainer_logprobs, trainer_model
from conftest import load

PARAMS = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=12, seed=11, ignore_eos=True)
PROMPT_LENGTHS = (9, 23, 5)
# Past Gemma 3 270M's 512-key sliding window, so the trainer's window is checked too (tiny-gemma3's is 8).
GEMMA3_PROMPT_LENGTHS = (9, 540, 23)


def prompts(llm: LLM, lengths: tuple[int, ...] = PROMPT_LENGTHS) -> list[list[int]]:
    generator = torch.Generator().manual_seed(3)
    vocab = llm.engine.source.config.vocab_size
    return [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in lengths]


def sampler_and_trainers(llm: LLM, lengths: tuple[int, ...] = PROMPT_LENGTHS
                         ) -> list[tuple[list[float], list[float], list[float]]]:
    """(sampled, score(), HF trainer) processed logprobs per prompt, the prompts sampled together."""
    batch = prompts(llm, lengths)
    outputs = llm.generate(batch, PARAMS)
    scores = llm.score(batch, [out.token_ids for out in outputs], PARAMS)
    model = trainer_model(llm)
    return [(out.logprobs, scored.logprobs, trainer_logprobs(model, llm, prompt, out.token_ids, PARAMS))
            for prompt, out, scored in zip(batch, outputs, scores)]


def assert_bitwise_parity(llm: LLM, lengths: tuple[int, ...] = PROMPT_LENGTHS) -> None:
    for sampled, scored, trained in sampler_and_trainers(llm, lengths):
        assert scored == sampled
        assert trained == sampled
        assert k3_kl(sampled, trained) == 0.0


@pytest.mark.parametrize("lm_head_fp32", [False, True])
def test_invariant_mode_sampler_equals_both_trainers_bf16(lm_head_fp32: bool) -> None:
    assert_bitwise_parity(LLM("random:tiny-qwen3", dtype="bfloat16", mode="invariant", lm_head_fp32=lm_head_fp32))


@pytest.mark.slow
def test_invariant_mode_sampler_equals_both_trainers_smollm2_bf16() -> None:
    assert_bitwise_parity(LLM("smollm2-135m", dtype="bfloat16", mode="invariant", max_model_len=128))


@pytest.mark.parametrize("lm_head_fp32", [False, True])
def test_invariant_mode_sampler_equals_both_trainers_tiny_gemma3_bf16(lm_head_fp32: bool) -> None:
    assert_bitwise_parity(LLM("random:tiny-gemma3", dtype="bfloat16", mode="invariant", lm_head_fp32=lm_head_fp32))


@pytest.mark.slow
@pytest.mark.parametrize("lm_head_fp32", [False, True])
def test_invariant_mode_sampler_equals_both_trainers_gemma3_bf16(lm_head_fp32: bool) -> None:
    llm = LLM("gemma3-270m", dtype="bfloat16", mode="invariant", max_model_len=576, lm_head_fp32=lm_head_fp32)
    assert_bitwise_parity(llm, GEMMA3_PROMPT_LENGTHS)


def test_default_mode_mismatch_is_reported() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32", mode="default")
    deltas = [abs(a - b) for sampled, _, trained in sampler_and_trainers(llm) for a, b in zip(sampled, trained)]
    assert max(deltas) > 0.0


def test_trainer_recompute_is_processed_not_raw() -> None:
    """At temperature != 1 a trainer that forgets the sampling transforms gets the raw logprobs, which differ."""
    llm = LLM("random:tiny-qwen3", dtype="bfloat16", mode="invariant")
    batch = prompts(llm)
    outputs = llm.generate(batch, PARAMS)
    model = trainer_model(llm)
    untransformed = SamplingParams(temperature=1.0, max_tokens=PARAMS.max_tokens)
    for prompt, out in zip(batch, outputs):
        assert trainer_logprobs(model, llm, prompt, out.token_ids, PARAMS) == out.logprobs
        assert trainer_logprobs(model, llm, prompt, out.token_ids, untransformed) == out.raw_logprobs
        assert out.raw_logprobs != out.logprobs


def test_check_in_a_results_file_reports_raw_vs_processed(tiny_run: tuple[int, Path]) -> None:
    cases = {case["mode"]: case for case in load(tiny_run[1])["cases"] if case["check"] == "trainer_parity"}
    assert cases["invariant"]["verdict"] == "pass"
    assert cases["invariant"]["metrics"]["max_abs_raw_vs_processed"] > 0.0
    assert cases["default"]["metrics"]["max_abs_dlogprob"] > 0.0
