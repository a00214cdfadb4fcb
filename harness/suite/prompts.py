"""Built-in prompt sets, drawn as token ids from a seeded generator so every run sees the same prompts.

`random-tokens` needs no tokenizer (random-weight models have none); `english` tokenizes a fixed list.
"""
from __future__ import annotations

import random

from bi_bench.engine import ModelSource
from bi_bench.harness.suite.schema import Workload

ENGLISH = (
    "The capital of France is",
    "Write a haiku about the sea:",
    "def fibonacci(n):",
    "Three reasons to learn Rust are",
    "Once upon a time, in a village by the mountains,",
    "The mitochondria is the powerhouse of the cell because",
    "Translate to German: The weather is nice today.",
    "List the planets of the solar system in order:",
    "A good breakfast should include",
    "SELECT name, email FROM users WHERE",
    "The main causes of the French Revolution were",
    "Explain recursion to a five-year-old:",
    "import numpy as np\n\ndef softmax(x):",
    "My favourite book is",
    "The quick brown fox",
    "Summarize the plot of Hamlet in two sentences:",
)


class PromptSource:
    def __init__(self, workload: Workload, source: ModelSource) -> None:
        self.workload = workload
        self.vocab_size = source.config.vocab_size
        tokenizer = source.tokenizer
        self.special_ids = set(tokenizer.all_special_ids) if tokenizer is not None else set()
        if workload.prompt_set == "english":
            if tokenizer is None:
                raise ValueError(f"workload.prompt_set 'english' needs a tokenizer; model "
                                 f"{source.model_id!r} has none (use 'random-tokens')")
            self.english = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in ENGLISH]

    def draw(self, rng: random.Random, min_len: int | None = None) -> list[int]:
        """A neighbour of min_len..max_len tokens (min_len may raise the workload's lower bound)."""
        return self._drawn(rng, self.workload.min_len, self.workload.max_len, min_len)

    def draw_needle(self, rng: random.Random, min_len: int | None = None) -> list[int]:
        """A needle: of the workload's needle_len when it sets one, else drawn like a neighbour."""
        low, high = self.workload.needle_len or (self.workload.min_len, self.workload.max_len)
        return self._drawn(rng, low, high, min_len)

    def _drawn(self, rng: random.Random, low: int, high: int, min_len: int | None) -> list[int]:
        low = max(low, min_len or 0)
        length = rng.randint(low, max(low, high))
        if self.workload.prompt_set == "english":
            return self._english(rng, length)
        return [self._random_id(rng) for _ in range(length)]

    def _random_id(self, rng: random.Random) -> int:
        while True:
            token = rng.randrange(self.vocab_size)
            if token not in self.special_ids:
                return token

    def _english(self, rng: random.Random, length: int) -> list[int]:
        tokens: list[int] = []
        while len(tokens) < length:
            tokens += rng.choice(self.english)
        return tokens[:length]
