from __future__ import annotations

import math

import torch

from bi_bench.engine.layers.sampler import SampleRequest, Sampler
from bi_bench.engine.sampling_params import SamplingParams
from bi_bench.kernels import get

SAMPLER = Sampler(get("log_softmax", "torch"), get("pointwise", "cpu_canonical"))


def sample(logits: torch.Tensor, params: SamplingParams, seed: int = 0, step: int = 0):
    return SAMPLER(logits, [SampleRequest(params, seed, step)] * logits.shape[0])


def test_greedy_processed_equals_raw() -> None:
    logits = torch.randn(3, 50)
    tokens, processed, raw = sample(logits, SamplingParams(temperature=0.0))
    assert tokens == logits.argmax(-1).tolist()
    assert processed == raw


def test_temperature_changes_processed_not_raw() -> None:
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    _, processed, raw = sample(logits, SamplingParams(temperature=0.5, seed=1))
    token = _[0]
    expected_raw = torch.log_softmax(logits[0], -1)[token].item()
    expected_processed = torch.log_softmax(logits[0] / 0.5, -1)[token].item()
    assert raw[0] == expected_raw
    assert math.isclose(processed[0], expected_processed, rel_tol=1e-6)
    assert processed[0] != raw[0]


def test_top_k_keeps_only_k_tokens() -> None:
    logits = torch.randn(1, 100, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, top_k=5)
    processed = SAMPLER.process(logits, torch.log_softmax(logits, -1), [params])
    kept = torch.isfinite(processed[0])
    assert kept.sum() == 5 and set(kept.nonzero().flatten().tolist()) == set(logits[0].topk(5).indices.tolist())
    assert math.isclose(processed[0].exp().sum().item(), 1.0, rel_tol=1e-5)


def test_top_p_keeps_the_smallest_nucleus() -> None:
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    probs = torch.softmax(logits, -1)[0]
    params = SamplingParams(temperature=1.0, top_p=float(probs[0] + probs[1]) - 1e-4)
    processed = SAMPLER.process(logits, torch.log_softmax(logits, -1), [params])
    assert torch.isfinite(processed[0]).tolist() == [True, True, False, False, False]


def test_min_p_drops_unlikely_tokens() -> None:
    logits = torch.tensor([[5.0, 4.9, 0.0, -3.0]])
    processed = SAMPLER.process(logits, torch.log_softmax(logits, -1), [SamplingParams(min_p=0.1)])
    assert torch.isfinite(processed[0]).tolist() == [True, True, False, False]


def test_draws_depend_only_on_seed_and_step() -> None:
    logits = torch.zeros(1, 1000)
    params = SamplingParams(temperature=1.0)
    first = sample(logits, params, seed=5, step=3)[0]
    assert sample(logits, params, seed=5, step=3)[0] == first
    batch = SAMPLER(torch.zeros(4, 1000), [SampleRequest(params, 9, 0), SampleRequest(params, 5, 3),
                                           SampleRequest(params, 1, 1), SampleRequest(params, 5, 4)])[0]
    assert batch[1] == first[0]
    assert len({sample(logits, params, seed=5, step=s)[0][0] for s in range(10)}) > 1


def test_scoring_a_given_token() -> None:
    logits = torch.randn(1, 20)
    request = SampleRequest(SamplingParams(temperature=0.0), 0, 0, target=7)
    tokens, processed, raw = SAMPLER(logits, [request])
    assert tokens == [7] and raw[0] == torch.log_softmax(logits[0], -1)[7].item()


def test_greedy_rows_keep_their_bits_beside_sampled_rows() -> None:
    """An all-greedy batch takes the log_softmax variant's greedy pick; a greedy row beside a sampled one takes the
    full log_softmax and torch.max: the same token and logprob bits either way, with ties and a NaN row."""
    sampler = Sampler(get("log_softmax", "cpu_canonical"), get("pointwise", "cpu_canonical"))
    logits = torch.randn(6, 4099, generator=torch.Generator().manual_seed(3)) * 8
    logits[1, 4098] = logits[1, 17] = logits[1].max() + 1.0
    logits[2, 100] = math.nan
    greedy = SampleRequest(SamplingParams(temperature=0.0), 0, 0)
    alone = sampler(logits, [greedy] * 6)
    mixed = sampler(torch.cat([logits, logits[:1]]), [greedy] * 6 + [SampleRequest(SamplingParams(temperature=0.7), 1, 0)])
    assert alone[0] == mixed[0][:6] and alone[0][1] == 17 and alone[0][2] == 100
    bits = lambda values: torch.tensor(values).view(torch.int32)  # noqa: E731  (fp32 -> Python float -> fp32 is exact)
    assert torch.equal(bits(alone[1] + alone[2]), bits(mixed[1][:6] + mixed[2][:6]))
