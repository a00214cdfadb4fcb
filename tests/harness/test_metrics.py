"""Metrics compare bits, not values, and stop comparing logprobs where the tokens part ways."""
from __future__ import annotations

from bi_bench.harness.results.metrics import case_metrics, compare, verdict
from bi_bench.harness.results.observations import Candidate, Group, Observation, digest


def obs(tokens: list[int], logprobs: list[float]) -> Observation:
    return Observation(token_ids=tokens, logprobs=logprobs)


def group(reference: Observation, *candidates: Observation) -> Group:
    return Group(prompt_token_ids=[1], reference=reference,
                 candidates=[Candidate(label=f"c{i}", observation=c) for i, c in enumerate(candidates)])


def test_identical_runs_are_bitwise_equal() -> None:
    ref = obs([1, 2, 3], [-0.5, -1.0, -2.0])
    metrics = case_metrics([group(ref, ref, ref)])
    assert metrics.bitwise_equal and metrics.first_divergence is None and metrics.max_abs_dlogprob == 0.0
    assert verdict(metrics, claims_invariance=True) == "pass"
    assert verdict(metrics, claims_invariance=False) == "equal"


def test_logprob_difference_in_last_float32_bit_diverges() -> None:
    ref = obs([1, 2, 3], [-0.5, -1.0, -2.0])
    cand = obs([1, 2, 3], [-0.5, -1.0000001192092896, -2.0])
    metrics = case_metrics([group(ref, cand)])
    assert not metrics.bitwise_equal and metrics.first_divergence == 1 and metrics.first_divergence_at == "c0"
    assert metrics.mismatching_tokens == 0 and metrics.max_abs_dlogprob > 0
    assert verdict(metrics, claims_invariance=True) == "fail"


def test_negative_zero_is_not_zero() -> None:
    assert compare(obs([1], [0.0]), obs([1], [-0.0])).first_divergence == 0


def test_token_divergence_stops_logprob_comparison() -> None:
    ref = obs([1, 2, 3, 4], [-1.0, -1.0, -1.0, -1.0])
    cand = obs([1, 2, 9, 8, 7], [-1.0, -1.0, -50.0, -50.0, -50.0])
    result = compare(ref, cand)
    assert result.first_divergence == 2 and result.dlogprobs == [0.0, 0.0]
    assert result.mismatching_tokens == 3  # two differ, one exists on one side only


def test_distinct_completions_and_kl_estimate() -> None:
    ref = obs([1, 2], [-1.0, -2.0])
    metrics = case_metrics([group(ref, obs([1, 2], [-1.5, -2.5]), obs([1, 3], [-1.0, -4.0]))])
    assert metrics.distinct_completions == 2 and metrics.trials == 2
    assert metrics.kl_estimate == (0.5 + 0.5 + 0.0) / 3


def test_digest_covers_every_bit() -> None:
    assert digest(obs([1], [0.0])).logprobs != digest(obs([1], [-0.0])).logprobs
    assert digest(obs([1, 2], [0.0, 0.0])).token_ids != digest(obs([2, 1], [0.0, 0.0])).token_ids


def test_token_outside_one_sides_support_is_counted_not_averaged() -> None:
    ref = obs([1, 2, 3], [-1.0, -2.0, -3.0])
    cand = obs([1, 2, 3], [-1.5, float("-inf"), -3.0])  # token 2 lies outside the candidate's top-p set
    metrics = case_metrics([group(ref, cand)])
    assert metrics.outside_support == 1 and metrics.first_divergence == 0
    assert metrics.max_abs_dlogprob == 0.5 and metrics.kl_estimate == 0.5 / 2
