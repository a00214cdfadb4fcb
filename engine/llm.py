"""The user-facing API, shaped like vLLM's: LLM(...).generate(...) and .score(...)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence as Seq

import torch
from safetensors.torch import load_file

from bi_bench.engine.config import EngineConfig
from bi_bench.engine.llm_engine import LLMEngine
from bi_bench.engine.loader import ModelSource
from bi_bench.engine.outputs import RequestOutput, ScoreOutput
from bi_bench.engine.sampling_params import SamplingParams

Prompt = str | list[int]


class LLM:
    def __init__(self, model: str, **engine_args) -> None:
        self.engine = LLMEngine(EngineConfig(model, **engine_args))

    def close(self) -> None:
        """Stops the tensor-parallel worker processes (also done at exit and when the LLM is collected)."""
        self.engine.close()

    @property
    def config(self) -> EngineConfig:
        return self.engine.config

    @property
    def source(self) -> ModelSource:
        """Where the weights came from: model id, Hugging Face config, tokenizer, weights folder."""
        return self.engine.source

    @property
    def tokenizer(self):
        return self.source.tokenizer

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.engine.runner.model.parameters())  # tied weights count once

    @property
    def num_preemptions(self) -> int:
        """Requests preempted (and later recomputed) since the engine started."""
        return self.engine.scheduler.num_preemptions

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prefix: the next request prefills in full."""
        self.engine.block_manager.reset_prefix_cache()

    @property
    def kernels(self) -> dict[str, str]:
        """The variant chosen for each op."""
        return self.engine.runner.kernels.names()

    def generate(self, prompts: Seq[Prompt], sampling_params: SamplingParams | Seq[SamplingParams] | None = None
                 ) -> list[RequestOutput]:
        token_lists = [self._tokenize(p) for p in prompts]
        params = _per_prompt(sampling_params, len(token_lists))
        seqs = [self.engine.add_request(ids, p) for ids, p in zip(token_lists, params)]
        self.engine.run_until_done()
        return [RequestOutput(seq.token_ids[:seq.num_prompt_tokens], seq.completion_token_ids,
                              self._detokenize(seq.completion_token_ids), seq.finish_reason or "length",
                              seq.logprobs, seq.raw_logprobs) for seq in seqs]

    def score(self, prompts: Seq[Prompt], completions: Seq[Prompt],
              sampling_params: SamplingParams | Seq[SamplingParams] | None = None) -> list[ScoreOutput]:
        """Logprobs of each completion given its prompt, from a prefill forward over prompt + completion."""
        if len(prompts) != len(completions):
            raise ValueError(f"score: {len(prompts)} prompts but {len(completions)} completions")
        params = _per_prompt(sampling_params, len(prompts))
        seqs = []
        for prompt, completion, p in zip(prompts, completions, params):
            prompt_ids, completion_ids = self._tokenize(prompt), self._tokenize(completion, special=False)
            seqs.append(self.engine.add_request(prompt_ids + completion_ids, p, scoring=True,
                                                num_prompt_tokens=len(prompt_ids)))
        self.engine.run_until_done()
        return [ScoreOutput(seq.token_ids[:seq.num_prompt_tokens], seq.completion_token_ids,
                            seq.logprobs, seq.raw_logprobs) for seq in seqs]

    def update_weights(self, weights: dict[str, torch.Tensor] | str | Path) -> None:
        """Takes new weights (a state dict with Hugging Face names, a .safetensors file or a folder of them)
        between requests. Prefixes cached under the old weights are never reused."""
        if isinstance(weights, (str, Path)):
            path = Path(weights)
            files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
            weights = {name: t for f in files for name, t in load_file(f).items()}
        self.engine.update_weights(weights)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The engine's weights under Hugging Face names (tensor_parallel_size 1)."""
        if self.engine.workers is not None:
            raise NotImplementedError("state_dict with tensor_parallel_size > 1 is not implemented yet")
        return {name: t.detach().clone() for name, t in self.engine.runner.model.state_dict().items()}

    def process_logits(self, logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
        """Logprobs [n, vocab] after `params`' processing, with the engine's own kernels: a trainer that
        recomputes logits applies this to get the sampler's processed logprobs."""
        sampler = self.engine.runner.sampler
        logits = logits.float()
        return sampler.process(logits, sampler.log_softmax.fn(logits), [params] * logits.shape[0])

    def _tokenize(self, prompt: Prompt, special: bool = True) -> list[int]:
        if not isinstance(prompt, str):
            return [int(t) for t in prompt]
        if self.tokenizer is None:
            raise ValueError(f"model {self.engine.config.model!r} has no tokenizer: pass token-id lists")
        return self.tokenizer(prompt, add_special_tokens=special)["input_ids"]

    def _detokenize(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True) if self.tokenizer else ""


def _per_prompt(params: SamplingParams | Seq[SamplingParams] | None, count: int) -> list[SamplingParams]:
    if params is None:
        return [SamplingParams()] * count
    if isinstance(params, SamplingParams):
        return [params] * count
    if len(params) != count:
        raise ValueError(f"{len(params)} sampling params for {count} prompts")
    return list(params)
