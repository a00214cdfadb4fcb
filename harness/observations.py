"""Raw per-trial observations: what the needle produced as reference and as each candidate.

Everything a results file claims is recomputed from these, so they hold the exact values the engine
returned (floats survive JSON exactly: Python writes the shortest repr that reads back to the same double).
"""
from __future__ import annotations

import hashlib
import struct

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Observation(Record):
    token_ids: list[int]
    logprobs: list[float]


class Candidate(Record):
    label: str  # the setting the needle ran under, e.g. "batch=12 pos=3"
    observation: Observation


class Group(Record):
    """One needle: its reference run and the runs that must match it bit for bit."""

    prompt_token_ids: list[int]
    reference: Observation
    candidates: list[Candidate] = Field(min_length=1)
    # Before temperature/top-k/top-p: kept where a check shows that they differ from the processed logprobs.
    reference_raw_logprobs: list[float] | None = None


class Digest(Record):
    token_ids: str
    logprobs: str


class GroupDigests(Record):
    reference: Digest
    candidates: list[Digest]


def digest(observation: Observation) -> Digest:
    """sha256 of the token ids as little-endian int64 and of the logprobs as little-endian float64."""
    tokens = struct.pack(f"<{len(observation.token_ids)}q", *observation.token_ids)
    logprobs = struct.pack(f"<{len(observation.logprobs)}d", *observation.logprobs)
    return Digest(token_ids=hashlib.sha256(tokens).hexdigest(), logprobs=hashlib.sha256(logprobs).hexdigest())


def group_digests(group: Group) -> GroupDigests:
    return GroupDigests(reference=digest(group.reference),
                        candidates=[digest(c.observation) for c in group.candidates])
