"""Tokens/s of one workload in default and invariant mode, runs interleaved so drift hits both alike."""
from __future__ import annotations

import random
import time

from bi_bench.engine import SamplingParams
from bi_bench.harness.engines import EnginePool, reset_prefix_cache
from bi_bench.harness.prompts import PromptSource
from bi_bench.harness.results import ModeThroughput, Throughput, ThroughputRun
from bi_bench.harness.suite import Suite

MODES = ("default", "invariant")


def measure(pool: EnginePool, suite: Suite, prompts: PromptSource) -> Throughput:
    settings = suite.throughput
    rng = random.Random(f"{suite.workload.seed}/throughput")
    batch = [prompts.draw(rng) for _ in range(settings.prompts)]
    params = SamplingParams(**{**suite.sampling.model_dump(), "max_tokens": settings.max_tokens,
                               "ignore_eos": True})
    engines = {mode: pool.get(mode=mode) for mode in MODES}
    for llm in engines.values():
        llm.generate(batch, params)  # warm-up: first calls at each shape pay for allocation and lazy init
    runs = []
    for repeat in range(settings.repeats):
        order = MODES if repeat % 2 == 0 else MODES[::-1]
        for mode in order:
            llm = engines[mode]
            reset_prefix_cache(llm)
            start = time.perf_counter()
            outputs = llm.generate(batch, params)
            seconds = time.perf_counter() - start
            runs.append(ThroughputRun(mode=mode, repeat=repeat, tokens=sum(len(o.token_ids) for o in outputs),
                                      seconds=seconds))
    return from_runs(settings.prompts, settings.max_tokens, runs)


def from_runs(prompts: int, max_tokens: int, runs: list[ThroughputRun]) -> Throughput:
    per_mode = {mode: _mode(runs, mode) for mode in MODES}
    return Throughput(prompts=prompts, max_tokens=max_tokens, runs=runs, **per_mode,
                      overhead=per_mode["default"].tokens_per_s / per_mode["invariant"].tokens_per_s)


def _mode(runs: list[ThroughputRun], mode: str) -> ModeThroughput:
    tokens = sum(r.tokens for r in runs if r.mode == mode)
    seconds = sum(r.seconds for r in runs if r.mode == mode)
    return ModeThroughput(tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds)
