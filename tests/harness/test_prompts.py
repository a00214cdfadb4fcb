"""Needles and neighbours are drawn from their own length ranges, the same for every run of a seed."""
from __future__ import annotations

import random
from types import SimpleNamespace

from bi_bench.harness.suite.prompts import PromptSource
from bi_bench.harness.suite.schema import Workload


def source(workload: Workload) -> PromptSource:
    model = SimpleNamespace(model_id="test", config=SimpleNamespace(vocab_size=100), tokenizer=None)
    return PromptSource(workload, model)


def test_needle_len_sets_the_needles_lengths_only() -> None:
    prompts = source(Workload(min_len=4, max_len=12, needle_len=[500, 520]))
    rng = random.Random(0)
    needles = [len(prompts.draw_needle(rng)) for _ in range(50)]
    neighbours = [len(prompts.draw(rng)) for _ in range(50)]
    assert min(needles) >= 500 and max(needles) <= 520 and len(set(needles)) > 1
    assert min(neighbours) >= 4 and max(neighbours) <= 12
    assert len(prompts.draw_needle(rng, min_len=515)) >= 515


def test_without_needle_len_needles_are_drawn_like_neighbours() -> None:
    prompts = source(Workload(min_len=4, max_len=12))
    assert prompts.draw_needle(random.Random(3)) == prompts.draw(random.Random(3))
