"""Tensor parallelism on gloo: TP>1 matches TP=1 (default mode: closely; tp-invariant mode: bitwise, also after
a weight update), the needle battery holds at TP=2 in invariant mode, and a dead worker stops every rank quickly."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.config import EngineConfig
from bi_bench.engine.llm_engine import check_tensor_parallel
from bi_bench.engine.loader import resolve
from bi_bench.engine.threads import torch_threads
from needle import PARAMS, needle_in_batch, observe, random_prompt, run_battery
from test_invariance import TINY, assert_all_equal
from torchrun_generate import perturbed

MODEL = "random:tiny-qwen3"
GREEDY = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
PROMPTS = [[5, 6, 7, 8, 9], [100, 200, 300], list(range(40, 77))]


@pytest.fixture(scope="module")
def engines():
    """(mode, tp) -> LLM, made once per module: each TP>1 engine spawns its workers once."""
    made: dict[tuple[str, int], LLM] = {}

    def get(mode: str, tp: int) -> LLM:
        if (mode, tp) not in made:
            made[mode, tp] = LLM(MODEL, dtype="float32", mode=mode, tensor_parallel_size=tp)
        return made[mode, tp]

    yield get
    for llm in made.values():
        llm.close()


@pytest.mark.parametrize("tp", [2, 4])
def test_default_mode_matches_tp1(engines, tp: int) -> None:
    reference = engines("default", 1).generate(PROMPTS, GREEDY)
    sharded = engines("default", tp).generate(PROMPTS, GREEDY)
    for ref, out in zip(reference, sharded):
        assert out.token_ids == ref.token_ids
        assert max(abs(a - b) for a, b in zip(out.logprobs, ref.logprobs)) < 1e-4


def test_tp_invariant_mode_is_bitwise_across_degrees(engines) -> None:
    rng = random.Random(0)
    needle = random_prompt(rng, 512, 20, 40)
    seen = {}
    for tp in (1, 2, 4):
        llm = engines("tp-invariant", tp)
        seen[f"tp{tp} alone"] = observe(llm.generate([needle], PARAMS)[0])
        seen[f"tp{tp} batch"] = needle_in_batch(llm, needle, 5, random.Random(tp), 512, 40)
    reference = seen["tp1 alone"]
    assert [name for name, obs in seen.items() if obs != reference] == []


def test_invariant_battery_holds_at_tp2() -> None:
    assert_all_equal(run_battery(dtype="float32", mode="invariant", tensor_parallel_size=2, **TINY))


@pytest.mark.slow
def test_invariant_battery_holds_at_tp4() -> None:
    assert_all_equal(run_battery(dtype="float32", mode="invariant", tensor_parallel_size=4, **TINY))


def test_weight_update_reaches_every_rank() -> None:
    single = LLM(MODEL, dtype="float32", mode="tp-invariant")
    sharded = LLM(MODEL, dtype="float32", mode="tp-invariant", tensor_parallel_size=2)
    before = sharded.generate(PROMPTS, GREEDY)
    state = perturbed(single.state_dict())
    for llm in (single, sharded):
        llm.update_weights(state)
    after = sharded.generate(PROMPTS, GREEDY)
    sharded.close()
    assert [o.token_ids for o in after] != [o.token_ids for o in before]
    expected = single.generate(PROMPTS, GREEDY)
    assert [(o.token_ids, o.logprobs) for o in after] == [(o.token_ids, o.logprobs) for o in expected]


def test_degree_errors_come_before_any_process() -> None:
    before = multiprocessing.active_children()
    with pytest.raises(ValueError, match="does not divide num_key_value_heads"):
        LLM(MODEL, tensor_parallel_size=8)
    assert multiprocessing.active_children() == before


def test_tp_invariant_needs_widths_in_whole_chunks() -> None:
    source = resolve(MODEL)
    source.config.vocab_size = 516
    with pytest.raises(ValueError, match="vocab_size=516 is not a multiple of 8 chunks"):
        check_tensor_parallel(source, EngineConfig(MODEL, mode="tp-invariant", tensor_parallel_size=2))


def test_dead_worker_stops_every_rank_quickly() -> None:
    llm = LLM(MODEL, dtype="float32", tensor_parallel_size=4)
    workers = llm.engine.workers.processes
    threading.Timer(0.5, os.kill, (workers[1].pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="worker rank 2 exited"):
        llm.generate([PROMPTS[0]] * 4, SamplingParams(max_tokens=100_000, ignore_eos=True))
    assert time.monotonic() - started < 10
    assert not any(process.is_alive() for process in workers)
    with pytest.raises(RuntimeError, match="shut down"):
        llm.generate([PROMPTS[0]], GREEDY)


def test_ranks_step_on_their_share_of_the_threads() -> None:
    """On a CPU rank 0 steps on its share of the caller's current threads (more would oversubscribe the cores, and
    a `threads` check still moves it); the caller's count is back after each step."""
    llm = LLM(MODEL, dtype="float32", tensor_parallel_size=2)
    seen = []
    run = llm.engine.runner.run
    llm.engine.runner.run = lambda *args: (seen.append(torch.get_num_threads()), run(*args))[1]
    try:
        for count in (4, 2):
            with torch_threads(count):
                llm.generate(PROMPTS, GREEDY)
                assert torch.get_num_threads() == count
    finally:
        llm.close()
    assert seen == [2] * GREEDY.max_tokens + [1] * GREEDY.max_tokens
