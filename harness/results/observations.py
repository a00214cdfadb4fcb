"""Raw per-trial observations: what the needle produced as reference and as each candidate.

Everything a results file claims is recomputed from these, so they hold the exact values the engine returned:
token ids and logprobs travel as packed int32 / float32 arrays (bi_bench.harness.results.packed), bit for bit, and a
run (or array) that repeats an earlier run of its group is stored as that run's name (bi_bench.harness.results.repeats).
"""
from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from bi_bench.harness.results.base import Record
from bi_bench.harness.results.packed import PackedFloats, PackedInts, float_bytes, int_bytes
from bi_bench.harness.results.repeats import expanded, named


class Observation(Record):
    token_ids: PackedInts
    logprobs: PackedFloats  # one per token

    @model_validator(mode="after")
    def _one_logprob_per_token(self) -> Observation:
        if len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.token_ids)} token ids but {len(self.logprobs)} logprobs")
        return self


class Candidate(Record):
    label: str  # the setting the needle ran under, e.g. "batch=12 pos=3"
    observation: Observation


class Group(Record):
    """One needle: its reference run and the runs that must match it bit for bit."""

    prompt_token_ids: PackedInts
    reference: Observation
    candidates: list[Candidate] = Field(min_length=1)
    # Before temperature/top-k/top-p: kept where a check shows that they differ from the processed logprobs.
    reference_raw_logprobs: PackedFloats | None = None

    @model_validator(mode="after")
    def _raw_logprob_per_token(self) -> Group:
        raw = self.reference_raw_logprobs
        if raw is not None and len(raw) != len(self.reference.token_ids):
            raise ValueError(f"{len(raw)} reference_raw_logprobs for {len(self.reference.token_ids)} tokens")
        return self

    @model_serializer(mode="wrap")
    def _repeats_named(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return named(handler(self))

    @model_validator(mode="before")
    @classmethod
    def _names_expanded(cls, data: Any) -> Any:
        return expanded(data) if isinstance(data, dict) and isinstance(data.get("candidates"), list) else data


class Digest(Record):
    token_ids: str
    logprobs: str


class GroupDigests(Record):
    prompt: str  # of the needle's prompt token ids: every case of a check must see the same prompts
    reference: Digest
    candidates: list[Digest]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(observation: Observation) -> Digest:
    """sha256 of the stored bytes: token ids as little-endian int32, logprobs as little-endian float32."""
    return Digest(token_ids=sha256(int_bytes(observation.token_ids)),
                  logprobs=sha256(float_bytes(observation.logprobs)))


def group_digests(group: Group) -> GroupDigests:
    return GroupDigests(prompt=sha256(int_bytes(group.prompt_token_ids)), reference=digest(group.reference),
                        candidates=[digest(c.observation) for c in group.candidates])
