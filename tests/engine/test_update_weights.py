"""In-flight weight updates: new weights take effect, and KV computed under old weights is never reused."""
from __future__ import annotations

import torch

from bi_bench.engine import LLM, SamplingParams

from needle import bitwise_equal

PARAMS = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
PROMPT = list(range(20, 70))


def perturbed(llm: LLM) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {name: t + 0.05 * torch.randn(t.shape, generator=generator) for name, t in llm.state_dict().items()}


def fresh_engine_with(weights: dict[str, torch.Tensor]) -> LLM:
    llm = LLM("random:tiny-qwen3", dtype="float32", mode="invariant")
    llm.update_weights(weights)
    return llm


def test_updated_weights_match_a_fresh_engine_and_skip_stale_prefixes() -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32", mode="invariant")
    before = llm.generate([PROMPT], PARAMS)[0]
    weights = perturbed(llm)
    llm.update_weights(weights)
    seq = llm.engine.add_request(PROMPT, PARAMS)
    llm.engine.run_until_done()
    assert seq.num_cached_tokens == 0
    expected = fresh_engine_with(weights).generate([PROMPT], PARAMS)[0]
    assert bitwise_equal(seq.logprobs, expected.logprobs) and seq.completion_token_ids == expected.token_ids
    assert expected.logprobs != before.logprobs


def test_reusing_stale_prefixes_would_have_changed_the_bits() -> None:
    """The counterfactual: keep the old cache salt, and the stale prefix is reused with different results."""
    llm = LLM("random:tiny-qwen3", dtype="float32", mode="invariant")
    llm.generate([PROMPT], PARAMS)
    weights = perturbed(llm)
    llm.engine.runner.update_weights(weights)  # new weights, old cache salt: what we must not do
    stale = llm.engine.add_request(PROMPT, PARAMS)
    llm.engine.run_until_done()
    assert stale.num_cached_tokens > 0
    expected = fresh_engine_with(weights).generate([PROMPT], PARAMS)[0]
    assert stale.logprobs != expected.logprobs


def test_update_from_a_safetensors_folder(tmp_path, tiny_model_dir) -> None:
    source = tiny_model_dir("tiny-qwen3")
    llm = LLM("random:tiny-qwen3", dtype="float32")
    llm.update_weights(source)
    from_folder = LLM(str(source), dtype="float32")
    ours, theirs = llm.generate([PROMPT], PARAMS)[0], from_folder.generate([PROMPT], PARAMS)[0]
    assert bitwise_equal(ours.logprobs, theirs.logprobs)
