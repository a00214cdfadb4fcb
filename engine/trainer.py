"""The trainer's side of RL parity: an unmodified Hugging Face model on the engine's weights recomputes
the logprobs of sampled tokens, the way a training framework does before its policy-gradient step."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, PreTrainedModel

from bi_bench.engine.llm import LLM
from bi_bench.engine.sampling_params import SamplingParams
from bi_bench.kernels import batch_invariant_mode
from bi_bench.kernels.registry import INVARIANT_MODES


def trainer_model(llm: LLM) -> PreTrainedModel:
    """Hugging Face modelling code with the engine's current weights. An invariant engine's trainer is built and
    run inside batch_invariant_mode with bi_bench attention; a default one uses stock SDPA, as trainers do."""
    invariant = llm.config.mode in INVARIANT_MODES
    # built inside the mode, an invariant trainer's RoPE frequencies come from the canonical pow, as the engine's
    with batch_invariant_mode() if invariant else contextlib.nullcontext():
        model = AutoModelForCausalLM.from_config(llm.source.config, dtype=llm.config.torch_dtype,
                                                 attn_implementation="bi_bench" if invariant else "sdpa")
    model.load_state_dict(llm.state_dict(), strict=False)
    return model.eval()


def trainer_logprobs(model: PreTrainedModel, llm: LLM, prompt: list[int], completion: list[int],
                     params: SamplingParams) -> list[float]:
    """The completion's processed logprobs under `params`, from one forward over prompt + completion.
    With the engine's fp32 lm_head, the trainer's head runs in fp32 too."""
    invariant = llm.config.mode in INVARIANT_MODES
    with torch.no_grad(), batch_invariant_mode() if invariant else contextlib.nullcontext():
        hidden = model.model(torch.tensor([prompt + completion])).last_hidden_state[0, len(prompt) - 1:-1]
        if llm.config.lm_head_fp32:
            logits = F.linear(hidden.float(), model.lm_head.weight.float())
        else:
            logits = model.lm_head(hidden)
        processed = llm.process_logits(logits, params)
    return processed.gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()


def k3_kl(sampler: list[float], trainer: list[float]) -> float:
    """Schulman's k3 estimate of KL(sampler || trainer) from the sampled tokens' logprobs: 0 iff they agree."""
    ratio = torch.tensor(trainer, dtype=torch.float64) - torch.tensor(sampler, dtype=torch.float64)
    return float((ratio.exp() - 1 - ratio).mean())
