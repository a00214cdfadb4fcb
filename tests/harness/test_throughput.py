"""Throughput: every setting of the matrix measured, interleaved within a TP degree, and each overhead taken
against default mode at the same TP degree with its own kernels."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from bi_bench.engine import SamplingParams
from bi_bench.harness.results.file import ThroughputRun
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.run.throughput import from_runs, measure, throughput_settings
from bi_bench.harness.suite.matrix import Setting
from bi_bench.harness.suite.schema import Suite

SUITE = Suite.model_validate({
    "name": "matrix",
    "models": [{"id": "random:tiny-qwen3", "tp": [1, 2]}],
    "modes": ["invariant", "default"],
    "kernels": {"default": {"matmul": ["torch", "split_k"]}},
    "checks": {"batch_size": {}},
    "throughput": {"prompts": 3, "max_tokens": 5, "repeats": 2},
})


def run(mode: str, tp: int, seconds: float, repeat: int = 0, tokens: int = 100, **overrides: str) -> ThroughputRun:
    return ThroughputRun(mode=mode, tp=tp, kernel_overrides=overrides, repeat=repeat, tokens=tokens, seconds=seconds)


def test_settings_are_the_headline_pair_each_tp_baseline_and_the_matrix() -> None:
    split_k = (("matmul", "split_k"),)
    torch_mm = (("matmul", "torch"),)
    assert throughput_settings(SUITE, SUITE.models[0]) == [
        Setting("default", 1), Setting("invariant", 1), Setting("default", 2),
        Setting("default", 1, torch_mm), Setting("default", 1, split_k),
        Setting("invariant", 2), Setting("default", 2, torch_mm), Setting("default", 2, split_k),
    ]


def test_overhead_is_against_default_mode_at_the_same_tp_degree() -> None:
    runs = [run("default", 1, 1.0), run("invariant", 1, 2.0), run("invariant", 1, 2.0, repeat=1),
            run("default", 1, 1.0, repeat=1), run("default", 2, 0.5), run("invariant", 2, 2.0),
            run("default", 2, 1.25, matmul="split_k")]
    throughput = from_runs(8, 16, runs)
    figures = {(s.mode, s.tp, tuple(s.kernel_overrides.items())): (s.tokens_per_s, s.overhead)
               for s in throughput.settings}
    assert figures == {("default", 1, ()): (100.0, 1.0), ("invariant", 1, ()): (50.0, 2.0),
                       ("default", 2, ()): (200.0, 1.0), ("invariant", 2, ()): (50.0, 4.0),
                       ("default", 2, (("matmul", "split_k"),)): (80.0, 2.5)}
    assert (throughput.default.tokens, throughput.invariant.seconds) == (200, 4.0)
    assert throughput.overhead == 2.0


def test_a_setting_without_its_baseline_is_an_error() -> None:
    with pytest.raises(ValueError, match="no runs in default mode at TP 2"):
        from_runs(8, 16, [run("default", 1, 1.0), run("invariant", 1, 2.0), run("invariant", 2, 1.0)])


@dataclass
class FakeLLM:
    args: dict[str, Any]
    log: list[tuple[str, int, str]]

    def reset_prefix_cache(self) -> None:
        pass

    def generate(self, batch: list[list[int]], params: list[SamplingParams]) -> list[Any]:
        self.log.append((self.args["mode"], self.args["tensor_parallel_size"], repr(self.args["kernels"])))
        return [type("Output", (), {"token_ids": [0] * p.max_tokens})() for p in params]


class FakePool(EnginePool):
    def __init__(self) -> None:
        super().__init__(SUITE.models[0], "cpu")
        self.log: list[tuple[str, int, str]] = []

    def fresh(self, **overrides: Any) -> FakeLLM:
        return FakeLLM(self.engine_args(**overrides), self.log)


class Prompts:
    def draw(self, rng: random.Random) -> list[int]:
        return [rng.randrange(100) for _ in range(4)]


def test_measure_runs_every_setting_interleaved_within_each_tp_degree() -> None:
    pool = FakePool()
    throughput = measure(pool, SUITE, Prompts())
    settings = throughput_settings(SUITE, SUITE.models[0])
    tp1 = [(s.mode, s.tp, repr(dict(s.kernels))) for s in settings if s.tp == 1]
    tp2 = [(s.mode, s.tp, repr(dict(s.kernels))) for s in settings if s.tp == 2]
    # per TP degree: one warm-up each, then repeat 0 in order and repeat 1 reversed
    assert pool.log == [*tp1, *tp1, *tp1[::-1], *tp2, *tp2, *tp2[::-1]]
    assert [(r.mode, r.tp, r.repeat) for r in throughput.runs] == [
        (mode, tp, repeat) for group in (tp1, tp2) for repeat, order in enumerate((group, group[::-1]))
        for mode, tp, _ in order]
    assert len(throughput.settings) == len(settings)
    assert all(r.tokens == 3 * 5 for r in throughput.runs)
