"""Logit processing, seeded sampling and the two logprobs the engine returns.

raw logprobs: log_softmax(logits.float()). processed logprobs: log_softmax of the distribution actually
sampled from (temperature, top-k, top-p, min-p applied). Draws use an exponential race whose noise comes
from a generator seeded by (request seed, step) alone, so neighbours in the batch never change a draw. Every
transcendental and prefix sum here goes through the pointwise op (on CPU, kernels/cpu/pointwise.py: the same bits
on any CPU).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bi_bench.engine.sampling_params import SamplingParams
from bi_bench.kernels import KernelVariant

_SEED_STRIDE = 1_000_003
_SEED_MASK = (1 << 63) - 1


@dataclass
class SampleRequest:
    params: SamplingParams
    seed: int
    step: int
    target: int | None = None  # score this given token instead of drawing one


def noise_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * _SEED_STRIDE + step) & _SEED_MASK)


class Sampler:
    def __init__(self, log_softmax: KernelVariant, pointwise: KernelVariant) -> None:
        self.log_softmax = log_softmax
        self.ops = pointwise.fn

    def __call__(self, logits: torch.Tensor, requests: list[SampleRequest]) -> tuple[list[int], list[float], list[float]]:
        if all(r.params.greedy and r.target is None for r in requests):
            # a greedy row's processed logprobs are its raw ones; the same token and bits as the path below
            tokens, logprobs = self.log_softmax.greedy_pick(logits)
            return tokens.tolist(), logprobs.tolist(), logprobs.tolist()
        logits = logits.float()
        raw = self.log_softmax.fn(logits)
        processed = self.process(logits, raw, [r.params for r in requests])
        # one reduction over every row (torch.max's index is the first maximal one, as argmax's)
        greedy = logits.max(dim=-1).indices.tolist()
        tokens = [self._choose(processed[i], greedy[i], request) for i, request in enumerate(requests)]
        index = torch.tensor(tokens)[:, None]
        return tokens, processed.gather(1, index)[:, 0].tolist(), raw.gather(1, index)[:, 0].tolist()

    def process(self, logits: torch.Tensor, raw: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
        """Processed logprobs per row; greedy rows keep the raw ones."""
        if all(p.greedy for p in params):
            return raw
        temperature = torch.tensor([p.temperature if not p.greedy else 1.0 for p in params])[:, None]
        scaled = logits / temperature
        scaled = _mask_top_k(scaled, [p.top_k for p in params])
        scaled = self._mask_top_p(scaled, [p.top_p for p in params])
        scaled = self._mask_min_p(scaled, [p.min_p for p in params])
        processed = self.log_softmax.fn(scaled)
        greedy = torch.tensor([p.greedy for p in params])
        return torch.where(greedy[:, None], raw, processed)

    def _mask_top_p(self, scaled: torch.Tensor, top_p: list[float]) -> torch.Tensor:
        if all(p >= 1.0 for p in top_p):
            return scaled
        ordered, order = scaled.sort(dim=-1)
        cumulative = self.ops.cumsum_last(self.ops.exp(self.log_softmax.fn(ordered)))
        drop = cumulative <= (1.0 - torch.tensor(top_p))[:, None]
        drop[:, -1] = False
        return scaled.scatter(1, order, ordered.masked_fill(drop, -torch.inf))

    def _mask_min_p(self, scaled: torch.Tensor, min_p: list[float]) -> torch.Tensor:
        if all(p == 0.0 for p in min_p):
            return scaled
        logprobs = self.log_softmax.fn(scaled)
        threshold = logprobs.amax(dim=-1, keepdim=True) + self.ops.log(torch.tensor(min_p))[:, None]
        return scaled.masked_fill(logprobs < threshold, -torch.inf)

    def _choose(self, processed: torch.Tensor, greedy_token: int, request: SampleRequest) -> int:
        if request.target is not None:
            return request.target
        if request.params.greedy:
            return greedy_token
        return int((processed - self.ops.log(self.exponential_noise(processed.shape[-1], request))).argmax())

    def exponential_noise(self, count: int, request: SampleRequest) -> torch.Tensor:
        """Exp(1) draws as -log(1 - u): torch.rand's 24-bit uniforms are exact bit moves, torch's exponential_ is
        not guaranteed to be (its kernel is another one per build). Never 0, whose log would make a masked
        token's -inf - -inf a NaN that argmax picks."""
        uniform = torch.rand(count, generator=noise_generator(request.seed, request.step))
        return (-self.ops.log(1.0 - uniform)).clamp_min(torch.finfo(torch.float32).tiny)


def _mask_top_k(scaled: torch.Tensor, top_k: list[int]) -> torch.Tensor:
    if all(k == 0 for k in top_k):
        return scaled
    vocab = scaled.shape[-1]
    k = torch.tensor([min(k, vocab) if k > 0 else vocab for k in top_k])
    kth = scaled.sort(dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
    return scaled.masked_fill(scaled < kth, -torch.inf)
