"""Tokens/s of one workload under every setting of the matrix (mode x TP degree x kernel variants).

Settings of one TP degree run interleaved, so drift hits them alike; each is compared with default mode at
the same TP degree with its own kernels. Default vs invariant mode at TP 1 is the headline overhead.
"""
from __future__ import annotations

import random
import time

from bi_bench.engine import SamplingParams
from bi_bench.harness.backends import Engine, EngineError
from bi_bench.harness.results.file import (ModeThroughput, RunSetting, SettingKey, SettingThroughput, Throughput,
                                      ThroughputRun)
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.suite.matrix import Setting, settings
from bi_bench.harness.suite.prompts import PromptSource
from bi_bench.harness.suite.schema import ModelSpec, Suite

HEADLINE = (Setting("default", 1), Setting("invariant", 1))
Prompt = list[int]


def throughput_settings(suite: Suite, model: ModelSpec) -> list[Setting]:
    """The headline pair, each TP degree's baseline (default mode, its own kernels), then the matrix."""
    baselines = [Setting("default", tp) for tp in model.tp]
    return list(dict.fromkeys([*HEADLINE, *baselines, *settings(suite, model)]))


def measure(pool: EnginePool, suite: Suite, prompts: PromptSource) -> Throughput:
    config = suite.throughput
    rng = random.Random(f"{suite.workload.seed}/throughput")
    batch = [prompts.draw(rng) for _ in range(config.prompts)]
    params = SamplingParams(**{**suite.sampling.model_dump(), "max_tokens": config.max_tokens, "ignore_eos": True})
    measured = throughput_settings(suite, pool.model)
    not_run = {setting.label: reason for setting in measured if (reason := pool.why_not(setting.engine_args()))}
    runs = []
    for tp in dict.fromkeys(setting.tp for setting in measured):
        group = [setting for setting in measured if setting.tp == tp and setting.label not in not_run]
        runs += interleaved(pool, group, batch, params, config.repeats, not_run)
    return from_runs(config.prompts, config.max_tokens, runs, not_run or None)


def interleaved(pool: EnginePool, group: list[Setting], batch: list[Prompt], params: SamplingParams,
                repeats: int, not_run: dict[str, str]) -> list[ThroughputRun]:
    """Every setting of `group` once per repeat, in order on even repeats and reversed on odd ones.

    The group's engines are held at once (the pool may drop some; they live until this returns)."""
    engines = {}
    for setting in group:
        try:
            engine = pool.get(**setting.engine_args())
            engine.generate(batch, [params] * len(batch))  # warm-up: first calls pay for allocation and lazy init
        except EngineError as exc:
            not_run[setting.label] = f"engine_error: {exc}"
            continue
        engines[setting] = engine
    group = [setting for setting in group if setting in engines]
    order = [group if repeat % 2 == 0 else group[::-1] for repeat in range(repeats)]
    return [timed(engines[setting], setting, repeat, batch, params)
            for repeat, settings_in_order in enumerate(order) for setting in settings_in_order]


def timed(llm: Engine, setting: Setting, repeat: int, batch: list[Prompt], params: SamplingParams) -> ThroughputRun:
    llm.reset_prefix_cache()
    start = time.perf_counter()
    outputs = llm.generate(batch, [params] * len(batch))
    seconds = time.perf_counter() - start
    return ThroughputRun(mode=setting.mode, tp=setting.tp, kernel_overrides=dict(setting.kernels), repeat=repeat,
                         tokens=sum(len(o.token_ids) for o in outputs), seconds=seconds)


def from_runs(prompts: int, max_tokens: int, runs: list[ThroughputRun],
              not_run: dict[str, str] | None = None) -> Throughput:
    """Every figure of the throughput section, from the raw runs; ValueError when a baseline has no runs and no
    reason in `not_run`."""
    by_setting: dict[SettingKey, list[ThroughputRun]] = {}
    for run in runs:
        by_setting.setdefault(run.key, []).append(run)
    totals = {key: _total(group) for key, group in by_setting.items()}

    def baseline(mode: str, tp: int) -> ModeThroughput | None:
        """The mode at this TP degree with its own kernels."""
        if (mode, tp, ()) not in totals and Setting(mode, tp).label not in (not_run or {}):
            raise ValueError(f"no runs in {mode} mode at TP {tp} with its own kernels")
        return totals.get((mode, tp, ()))

    per_setting = [_figures(group[0], totals[key], baseline("default", group[0].tp))
                   for key, group in by_setting.items()]
    default, invariant = (baseline(setting.mode, setting.tp) for setting in HEADLINE)
    return Throughput(prompts=prompts, max_tokens=max_tokens, runs=runs, settings=per_setting, default=default,
                      invariant=invariant, overhead=_ratio(default, invariant), not_run=not_run)


def _figures(setting: RunSetting, total: ModeThroughput, baseline: ModeThroughput | None) -> SettingThroughput:
    return SettingThroughput(**setting.model_dump(include=set(RunSetting.model_fields)), **total.model_dump(),
                             overhead=_ratio(baseline, total))


def _ratio(baseline: ModeThroughput | None, measured: ModeThroughput | None) -> float | None:
    """How many times slower `measured` is than `baseline`; None when either has no runs."""
    return None if baseline is None or measured is None else baseline.tokens_per_s / measured.tokens_per_s


def _total(runs: list[ThroughputRun]) -> ModeThroughput:
    tokens = sum(r.tokens for r in runs)
    seconds = sum(r.seconds for r in runs)
    return ModeThroughput(tokens=tokens, seconds=seconds, tokens_per_s=tokens / seconds)
