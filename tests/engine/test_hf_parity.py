"""Our engine against Hugging Face transformers on the same weights: fp32, greedy."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from bi_bench.engine import LLM, SamplingParams

NEAR_TIE = 1e-3
LOGPROB_TOLERANCE = 1e-3


def hf_greedy(model, prompt_ids: list[int], max_tokens: int) -> tuple[list[int], list[float], list[float]]:
    """HF generate: tokens, raw logprobs of each token, and the top-2 logit gap at each step."""
    ids = torch.tensor([prompt_ids])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, do_sample=False,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    tokens = out.sequences[0, len(prompt_ids):].tolist()
    logprobs, gaps = [], []
    for logits, token in zip(out.logits, tokens):
        row = logits[0].float()
        logprobs.append(torch.log_softmax(row, -1)[token].item())
        top2 = row.topk(2).values
        gaps.append((top2[0] - top2[1]).item())
    return tokens, logprobs, gaps


def assert_matches_hf(llm: LLM, hf_model, prompts: list[list[int]], max_tokens: int) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    outputs = llm.generate(prompts, params)
    for prompt, out in zip(prompts, outputs):
        tokens, logprobs, gaps = hf_greedy(hf_model, prompt, max_tokens)
        agree = next((i for i, (a, b) in enumerate(zip(out.token_ids, tokens)) if a != b), len(tokens))
        if agree < len(tokens):
            assert gaps[agree] < NEAR_TIE, f"diverged from HF at step {agree} without a near-tie"
        ours = torch.tensor(out.raw_logprobs[:agree])
        theirs = torch.tensor(logprobs[:agree])
        assert (ours - theirs).abs().max().item() < LOGPROB_TOLERANCE


def random_prompts() -> list[list[int]]:
    generator = torch.Generator().manual_seed(7)
    return [torch.randint(0, 512, (int(n),), generator=generator).tolist()
            for n in torch.randint(3, 40, (8,), generator=generator)]


@pytest.mark.parametrize("arch", ["tiny-qwen3", "tiny-qwen2", "tiny-llama"])
def test_tiny_random_models_match_hf(arch: str, tiny_model_dir) -> None:
    path = tiny_model_dir(arch)
    llm = LLM(str(path), dtype="float32")
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert_matches_hf(llm, hf_model, random_prompts(), max_tokens=32)


@pytest.mark.parametrize("arch, suffix", [("tiny-qwen2", "_proj.bias"), ("tiny-qwen3", "k_norm.weight"),
                                          ("tiny-llama", "layernorm.weight"), ("tiny-llama", "model.norm.weight")])
def test_parity_check_catches_weights_left_at_hf_init(arch: str, suffix: str, tiny_model_dir) -> None:
    """The counterfactual: an engine that ignored these biases or norm weights would no longer match HF."""
    path = tiny_model_dir(arch)
    llm = LLM(str(path), dtype="float32")
    at_init = torch.zeros_like if suffix.endswith("bias") else torch.ones_like
    llm.update_weights({name: at_init(t) if name.endswith(suffix) else t for name, t in llm.state_dict().items()})
    hf_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with pytest.raises(AssertionError):
        assert_matches_hf(llm, hf_model, random_prompts(), max_tokens=32)


@pytest.mark.slow
def test_smollm2_matches_hf() -> None:
    llm = LLM("smollm2-135m", dtype="float32")
    hf_model = AutoModelForCausalLM.from_pretrained(llm.engine.source.weights_dir, dtype=torch.float32)
    texts = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "List three colors:",
             "The best way to learn a language is", "import numpy as np\n", "Q: What is 2+2?\nA:",
             "Photosynthesis is the process"]
    prompts = [llm.tokenizer(t)["input_ids"] for t in texts]
    assert_matches_hf(llm, hf_model, prompts, max_tokens=32)
