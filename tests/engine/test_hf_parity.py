"""Our engine against Hugging Face transformers on the same weights: fp32, greedy."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from bi_bench.engine import LLM, SamplingParams
from bi_bench.kernels import variants

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


def hf_forward_logits(model, prompt_ids: list[int], completion: list[int]) -> torch.Tensor:
    """HF's raw logits for each completion token, from one plain forward over prompt + completion: up to the
    first token where HF's greedy choice would differ, the very logits of HF's own greedy steps."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion]), logits_to_keep=len(completion) + 1).logits
    return logits[0, :-1].float()


def assert_matches_hf_forward(llm: LLM, hf_model, prompts: list[list[int]], max_tokens: int) -> None:
    """Greedy tokens equal HF's argmax but at near-ties (where they may part), raw logprobs within tolerance."""
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    for prompt, out in zip(prompts, llm.generate(prompts, params)):
        logits = hf_forward_logits(hf_model, prompt, out.token_ids)
        theirs = logits.argmax(-1).tolist()
        agree = next((i for i, (a, b) in enumerate(zip(out.token_ids, theirs)) if a != b), len(theirs))
        if agree < len(theirs):
            top2 = logits[agree].topk(2).values
            assert (top2[0] - top2[1]).item() < NEAR_TIE, f"diverged from HF at step {agree} without a near-tie"
        chosen = torch.log_softmax(logits, -1).gather(1, torch.tensor(out.token_ids)[:, None])[:, 0]
        ours = torch.tensor(out.raw_logprobs, dtype=torch.float32)
        assert (ours - chosen)[:agree].abs().max().item() < LOGPROB_TOLERANCE


def tiny_gemma3(path, attention: str = "cpu_row_program") -> tuple[LLM, torch.nn.Module]:
    """The engine in fp32 and HF in float64 with its eager attention and sliding-window mask."""
    llm = LLM(str(path), dtype="float32", kernels={"attention": attention})
    return llm, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64, attn_implementation="eager")


@pytest.mark.parametrize("attention", [v.name for v in variants("attention") if "cpu" in v.devices])
def test_tiny_gemma3_windows_match_hf_float64(attention: str, tiny_model_dir) -> None:
    """tiny-gemma3 attends through an 8-key window on two of its three layers; prompts run to 40 + 32 tokens."""
    llm, hf_model = tiny_gemma3(tiny_model_dir("tiny-gemma3"), attention)
    assert_matches_hf_forward(llm, hf_model, random_prompts(), max_tokens=32)


def test_parity_check_catches_an_ignored_window(tiny_model_dir) -> None:
    llm, hf_model = tiny_gemma3(tiny_model_dir("tiny-gemma3"))
    for layer in llm.engine.runner.attention_layers:
        layer.window = None
    with pytest.raises(AssertionError):
        assert_matches_hf_forward(llm, hf_model, random_prompts(), max_tokens=32)


@pytest.mark.parametrize("suffix", ["pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
                                    "post_attention_layernorm.weight", "q_norm.weight"])
def test_parity_check_catches_gemma3_norms_left_at_hf_init(suffix: str, tiny_model_dir) -> None:
    """Gemma's norms start at 0 (they scale by 1 + weight): an engine that skipped one would not match."""
    llm, hf_model = tiny_gemma3(tiny_model_dir("tiny-gemma3"))
    llm.update_weights({name: torch.zeros_like(t) if name.endswith(suffix) else t
                        for name, t in llm.state_dict().items()})
    with pytest.raises(AssertionError):
        assert_matches_hf_forward(llm, hf_model, random_prompts(), max_tokens=32)


# Gemma 3's local layers see 512 keys: the long prompt's last ~200 positions are past the window.
LONG_TEXT = " ".join(
    f"Chapter {n}. The lighthouse keeper climbed the {n * 7} steps of the tower before dawn, as he had done "
    f"every morning for {n + 11} years. He trimmed the wick, polished the great lens and wrote in the log: wind "
    f"from the north-west, sea moderate, {n + 2} ships passed in the night. Then he made tea, fed the cat and "
    f"watched the fishing boats leave the harbour one by one, their lights going out as the sun came up."
    for n in range(1, 9))


@pytest.mark.slow
def test_gemma3_matches_hf() -> None:
    llm = LLM("gemma3-270m", dtype="float32", max_model_len=1024)
    hf_model = AutoModelForCausalLM.from_pretrained(llm.engine.source.weights_dir, dtype=torch.float32)
    texts = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "List three colors:",
             "The best way to learn a language is", "import numpy as np\n", "Q: What is 2+2?\nA:", LONG_TEXT]
    prompts = [llm.tokenizer(t)["input_ids"] for t in texts]
    assert len(prompts[-1]) >= 700
    assert_matches_hf_forward(llm, hf_model, prompts, max_tokens=32)


@pytest.mark.slow
def test_smollm2_matches_hf() -> None:
    llm = LLM("smollm2-135m", dtype="float32")
    hf_model = AutoModelForCausalLM.from_pretrained(llm.engine.source.weights_dir, dtype=torch.float32)
    texts = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "List three colors:",
             "The best way to learn a language is", "import numpy as np\n", "Q: What is 2+2?\nA:",
             "Photosynthesis is the process"]
    prompts = [llm.tokenizer(t)["input_ids"] for t in texts]
    assert_matches_hf(llm, hf_model, prompts, max_tokens=32)
