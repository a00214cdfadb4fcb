"""What a check sees: engines for its case, the needle's sampling, seeded prompts and neighbours."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from bi_bench.engine import SamplingParams
from bi_bench.harness.backends import Engine
from bi_bench.harness.backends.base import Output
from bi_bench.harness.results.observations import Observation
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.suite.prompts import PromptSource

Request = tuple[list[int], SamplingParams]


class Skip(Exception):
    """A case that cannot run here; the message is the reason recorded with verdict `skipped`."""


@dataclass
class CaseContext:
    pool: EnginePool
    case_args: dict[str, Any]  # mode, tensor_parallel_size, kernels
    sampling: SamplingParams
    prompts: PromptSource
    rng: random.Random
    tokens: int = 0  # generated or scored, for the progress display
    kernels: dict[str, str] = field(default_factory=dict)  # the variants the case's first engine runs

    @property
    def block_size(self) -> int:
        return self.pool.model.block_size

    def llm(self, **overrides: Any) -> Engine:
        """The case's engine (with overrides), shared with other cases of the same settings."""
        return self._built(self.pool.get, overrides)

    def fresh_llm(self, **overrides: Any) -> Engine:
        return self._built(self.pool.fresh, overrides)

    def _built(self, build: Callable[..., Engine], overrides: dict[str, Any]) -> Engine:
        llm = build(**{**self.case_args, **overrides})
        self.kernels = self.kernels or llm.kernels
        return llm

    def needle(self, min_len: int | None = None) -> list[int]:
        return self.prompts.draw_needle(self.rng, min_len)

    def neighbours(self, count: int, min_len: int | None = None) -> list[Request]:
        """Random-length prompts, each wanting a random number of tokens under its own seed."""
        most = 2 * self.sampling.max_tokens
        return [(self.prompts.draw(self.rng, min_len),
                 dataclasses.replace(self.sampling, max_tokens=self.rng.randint(1, most),
                                     seed=self.rng.randrange(1 << 31)))
                for _ in range(count)]

    def batch(self, size: int) -> tuple[list[int], list[Request], int]:
        """A needle, `size - 1` neighbours, and the needle's random position among them (drawn in that order)."""
        needle = self.needle()
        neighbours = self.neighbours(size - 1)
        return needle, neighbours, self.rng.randrange(size)

    def among_neighbours(self, llm: Engine, needle: list[int], size: int,
                         params: SamplingParams | None = None) -> tuple[int, Observation]:
        """The needle at a random position among `size - 1` new neighbours: that position, and what it got."""
        position = self.rng.randrange(size)
        return position, self.in_batch(llm, needle, self.neighbours(size - 1), position, params)

    def alone(self, llm: Engine, needle: list[int], params: SamplingParams | None = None,
              warm: bool = False) -> Observation:
        return self.in_batch(llm, needle, [], 0, params, warm)

    def in_batch(self, llm: Engine, needle: list[int], neighbours: list[Request], position: int,
                 params: SamplingParams | None = None, warm: bool = False) -> Observation:
        """Runs the needle at `position` among `neighbours` in one generate call; returns what the needle got.

        Runs start with an empty prefix cache unless `warm`: a cache hit shortens the prefill, which is a
        setting of its own (the prefix_cache check's), and it must not leak into other checks or cases.
        """
        out = self.needle_output(llm, needle, neighbours, position, params, warm)
        return Observation(token_ids=list(out.token_ids), logprobs=list(out.logprobs))

    def needle_output(self, llm: Engine, needle: list[int], neighbours: list[Request], position: int,
                      params: SamplingParams | None = None, warm: bool = False) -> Output:
        """What `in_batch` observes, as the engine returned it (raw logprobs included)."""
        if not warm:
            llm.reset_prefix_cache()
        params = params or self.sampling
        if self.pool.backend.uniform_batches:
            neighbours = [(prompt, params) for prompt, _ in neighbours]
        requests = [*neighbours[:position], (needle, params), *neighbours[position:]]
        outputs = llm.generate([prompt for prompt, _ in requests], [p for _, p in requests])
        self.tokens += sum(len(out.token_ids) for out in outputs)
        return outputs[position]

    def score(self, llm: Engine, requests: list[tuple[list[int], list[int]]], params: SamplingParams,
              position: int) -> Observation:
        """Scores (prompt, completion) pairs in one call, on an empty prefix cache; returns the pair at `position`."""
        llm.reset_prefix_cache()
        outputs = llm.score([p for p, _ in requests], [c for _, c in requests], params)
        self.tokens += sum(len(out.token_ids) for out in outputs)
        out = outputs[position]
        return Observation(token_ids=list(out.token_ids), logprobs=list(out.logprobs))
