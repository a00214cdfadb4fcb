"""Continuous batching with chunked prefill and preemption by recompute."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bi_bench.engine.block_manager import BlockManager
from bi_bench.engine.sequence import Sequence, SequenceStatus


@dataclass
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens computed this step, starting at seq.num_computed_tokens

    @property
    def completes(self) -> bool:
        """This step reaches the sequence's last token, so its logits are wanted."""
        return self.seq.num_computed_tokens + self.num_tokens == len(self.seq)


class Scheduler:
    """Each step: running sequences first (oldest first), then waiting ones, within the token budget.

    A step may mix decodes with prefill chunks. When blocks run out, the newest running sequence is
    preempted: its blocks are released and all its tokens are recomputed later.
    """

    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        self.block_manager = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[ScheduledSeq]:
        budget = self.max_num_batched_tokens
        scheduled: list[ScheduledSeq] = []
        for seq in list(self.running):
            if budget == 0:
                break
            if seq.status != SequenceStatus.RUNNING:
                continue  # preempted earlier in this loop
            num_tokens = min(seq.num_uncomputed_tokens, budget)
            if not self._make_room(seq, num_tokens):
                continue
            self.block_manager.grow(seq, num_tokens)
            scheduled.append(ScheduledSeq(seq, num_tokens))
            budget -= num_tokens
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            self.block_manager.reuse_cached_prefix(seq)
            num_tokens = min(seq.num_uncomputed_tokens, budget)
            if not self.block_manager.can_grow(seq, num_tokens):
                self.block_manager.release(seq)
                seq.reset_for_recompute()
                break
            self.waiting.popleft()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            self.block_manager.grow(seq, num_tokens)
            scheduled.append(ScheduledSeq(seq, num_tokens))
            budget -= num_tokens
        return scheduled

    def _make_room(self, seq: Sequence, num_tokens: int) -> bool:
        """Preempts the newest running sequences until `seq` fits; False if `seq` itself had to go."""
        while not self.block_manager.can_grow(seq, num_tokens):
            victim = self.running[-1]
            self._preempt(victim)
            if victim is seq:
                return False
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.block_manager.release(seq)
        seq.reset_for_recompute()
        self.waiting.appendleft(seq)
        self.num_preemptions += 1

    def finish(self, seq: Sequence, reason: str) -> None:
        seq.status = SequenceStatus.FINISHED
        seq.finish_reason = reason
        self.running.remove(seq)
        self.block_manager.release(seq)
