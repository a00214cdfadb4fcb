from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

from bi_bench.engine.sampling_params import SamplingParams


class SequenceStatus(Enum):
    WAITING = auto()
    RUNNING = auto()
    FINISHED = auto()


@dataclass
class Sequence:
    """One request: its tokens, what of them is in the KV cache, and what was sampled so far.

    A scoring sequence carries its completion from the start and samples nothing; it records the
    log-probabilities of its own next tokens from position `num_prompt_tokens - 1` on.
    """

    seq_id: int
    token_ids: list[int]
    params: SamplingParams
    seed: int
    scoring: bool = False
    num_prompt_tokens: int = 0
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0
    block_table: list[int] = field(default_factory=list)
    status: SequenceStatus = SequenceStatus.WAITING
    logprobs: list[float] = field(default_factory=list)
    raw_logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if not self.num_prompt_tokens:
            self.num_prompt_tokens = len(self.token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def completion_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def num_reusable_tokens(self) -> int:
        """How much of a cached prefix may stand in for computing: logits are wanted after it."""
        return (self.num_prompt_tokens if self.scoring else len(self.token_ids)) - 1

    def score_positions(self, start: int, end: int) -> range:
        """Positions in [start, end) whose logits score the next given token (scoring sequences only)."""
        return range(max(start, self.num_prompt_tokens - 1), min(end, len(self.token_ids) - 1))

    def reset_for_recompute(self) -> None:
        """Preempted: the cache is given back and every token, sampled ones included, is recomputed."""
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        self.block_table = []
        self.status = SequenceStatus.WAITING
