"""transformers: an unmodified Hugging Face model in-process; invariant mode runs it inside batch_invariant_mode().

A batch is left-padded and decoded step by step with the model's own KV cache; tokens are drawn by bi-bench's
seeded sampler (draws depend on the request's seed and step alone), so only the model's forward is under test.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from bi_bench.engine import SampleRequest, Sampler, SamplingParams
from bi_bench.harness.backends.base import Backend, Capabilities, Completion, NotApplicable
from bi_bench.kernels import batch_invariant_mode, select
from bi_bench.kernels.registry import ONE_DEVICE_MODES



class Transformers(Backend):
    name = "transformers"
    description = "an unmodified Hugging Face model in-process, batches left-padded (invariant: batch_invariant_mode)"
    capabilities = Capabilities(logprobs="processed", can=frozenset({"batch", "seed", "threads"}),
                                settings=frozenset(), modes=ONE_DEVICE_MODES)

    def build(self, args: dict[str, Any]) -> HFEngine:
        source = self.source()
        if source.weights_dir is None:
            raise NotApplicable(f"backend {self.name}: model {self.model_id!r} has no weights folder to load")
        dtype = getattr(torch, args["dtype"])
        attention = self.spec.attn_implementation or "eager"
        with _mode(args["mode"]):
            model = AutoModelForCausalLM.from_pretrained(source.weights_dir, dtype=dtype,
                                                         attn_implementation=attention)
        sampler = Sampler(*(select(op, "cpu", dtype, args["mode"]) for op in ("log_softmax", "pointwise")))
        return HFEngine(model.eval(), args["mode"], sampler,
                        pad_id=source.config.eos_token_id if isinstance(source.config.eos_token_id, int) else 0)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "version": importlib.metadata.version("transformers"),
                "reported": {"attn_implementation": self.spec.attn_implementation or "eager"}}


def _mode(mode: str) -> contextlib.AbstractContextManager[None]:
    return batch_invariant_mode() if mode == "invariant" else contextlib.nullcontext()


class HFEngine:
    def __init__(self, model: PreTrainedModel, mode: str, sampler: Sampler, pad_id: int) -> None:
        self.model, self.mode, self.sampler, self.pad_id = model, mode, sampler, pad_id
        self.eos = set(_as_list(model.config.eos_token_id))

    @property
    def kernels(self) -> dict[str, str]:
        return {"model": f"transformers/{self.model.config._attn_implementation}",
                "log_softmax": self.sampler.log_softmax.name}

    def generate(self, prompts: list[list[int]], sampling_params: list[SamplingParams]) -> list[Completion]:
        with torch.inference_mode(), _mode(self.mode):
            return self._generate(prompts, sampling_params)

    def _generate(self, prompts: list[list[int]], params: list[SamplingParams]) -> list[Completion]:
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        done = [False] * len(prompts)
        tokens: list[list[int]] = [[] for _ in prompts]
        logprobs: list[list[float]] = [[] for _ in prompts]
        cache, step_ids = None, ids
        for step in range(max(p.max_tokens for p in params)):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1]:]
            out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions, cache=cache,
                             use_cache=True)
            cache = out.cache
            requests = [SampleRequest(p, p.seed or 0, step) for p in params]
            drawn, processed, _ = self.sampler(out.logits[:, -1], requests)
            for row, (token, logprob) in enumerate(zip(drawn, processed)):
                if not done[row]:
                    tokens[row].append(token)
                    logprobs[row].append(logprob)
                    done[row] = len(tokens[row]) >= params[row].max_tokens or (
                        token in self.eos and not params[row].ignore_eos)
            if all(done):
                break
            step_ids = torch.tensor(drawn)[:, None]
            mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=mask.dtype)], dim=1)
        return [Completion(t, lp) for t, lp in zip(tokens, logprobs)]

    def score(self, prompts: list[list[int]], completions: list[list[int]], sampling_params: SamplingParams) -> Any:
        raise NotApplicable("backend transformers: score is not available")

    def reset_prefix_cache(self) -> None:
        """Nothing is cached between calls."""

    def close(self) -> None:
        """Freed with the model."""


def _as_list(value: int | list[int] | None) -> list[int]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)
