"""Invariant mode: the needle's tokens and processed logprobs are bitwise identical in every setting.

Invariant mode runs each leg at another thread count too. Default mode in fp32 is the negative control: the
BLAS reduces in another order below 12 rows, so some setting must change the needle's bits (or the check
could not fail).
"""
from __future__ import annotations

import pytest

from needle import Observation, run_battery

# Each battery leg runs at the next of these thread counts (more than the 2 cores: oversubscription is fine)
THREADS = (1, 3, 5, 12, 16)
TINY = dict(model="random:tiny-qwen3", batch_sizes=(2, 3, 5, 9, 16, 32), max_len=40, needle_len=(40, 56),
            preempt_blocks=6)
SMOLLM2 = dict(model="smollm2-135m", batch_sizes=(3, 5, 12, 32), max_len=16, needle_len=(36, 44), preempt_blocks=4)
# Needles far past the sliding window (8 keys in tiny-gemma3, 512 in Gemma 3 270M): their keys leave it.
TINY_GEMMA3 = {**TINY, "model": "random:tiny-gemma3"}
GEMMA3 = dict(model="gemma3-270m", batch_sizes=(2, 8), max_len=16, needle_len=(600, 640), preempt_blocks=44,
              max_model_len=704)


def assert_all_equal(seen) -> None:
    reference = seen["alone"]
    differing = [name for name, obs in seen.items() if obs != reference]
    assert not differing, f"needle changed under: {differing}"


def test_observations_compare_logprobs_bit_for_bit() -> None:
    assert Observation((1,), (0.0,)) != Observation((1,), (-0.0,))
    assert Observation((1,), (-0.5,)) == Observation((1,), (-0.5,), cached_tokens=32)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tiny_qwen3_invariant(dtype: str) -> None:
    assert_all_equal(run_battery(dtype=dtype, mode="invariant", threads=THREADS, **TINY))


def test_tiny_qwen3_default_mode_diverges() -> None:
    seen = run_battery(dtype="float32", mode="default", **TINY)
    assert any(obs != seen["alone"] for obs in seen.values()), "default-mode control did not diverge"


@pytest.mark.slow
def test_smollm2_bf16_invariant() -> None:
    assert_all_equal(run_battery(dtype="bfloat16", mode="invariant", threads=THREADS, **SMOLLM2))


@pytest.mark.slow
def test_smollm2_fp32_invariant() -> None:
    assert_all_equal(run_battery(dtype="float32", mode="invariant", threads=THREADS, **SMOLLM2))


@pytest.mark.slow
def test_smollm2_default_mode_diverges() -> None:
    seen = run_battery(dtype="float32", mode="default", **SMOLLM2)
    assert any(obs != seen["alone"] for obs in seen.values()), "default-mode control did not diverge"


def test_tiny_gemma3_invariant() -> None:
    assert_all_equal(run_battery(dtype="bfloat16", mode="invariant", threads=THREADS, **TINY_GEMMA3))


def test_tiny_gemma3_default_mode_diverges() -> None:
    seen = run_battery(dtype="float32", mode="default", **TINY_GEMMA3)
    assert any(obs != seen["alone"] for obs in seen.values()), "default-mode control did not diverge"


@pytest.mark.slow
def test_gemma3_bf16_invariant() -> None:
    assert_all_equal(run_battery(dtype="bfloat16", mode="invariant", threads=(1, 3), **GEMMA3))


@pytest.mark.slow
def test_gemma3_bf16_default_mode_diverges() -> None:
    seen = run_battery(dtype="bfloat16", mode="default", **GEMMA3)
    assert any(obs != seen["alone"] for obs in seen.values()), "default-mode control did not diverge"
