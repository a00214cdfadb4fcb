"""Runs that repeat an earlier run of their group, stored as that run's name.

In an invariant-mode case nearly every candidate repeats the reference; in default mode the tokens mostly do
while the logprobs differ in their last bits. So in the stored form a candidate's observation may be the name of
an earlier run of its group with the same bits ("reference", "candidates[2]"), and an observation's `token_ids`
or `logprobs` the name of an earlier run whose array it repeats. Packed arrays are canonical (base64 of the
bytes), so equal text is equal bits; and no name looks like one (base64 has no brackets, and its length is a
multiple of 4).
"""
from __future__ import annotations

import re
from typing import Any

REFERENCE = "reference"
NAME = re.compile(r"reference|candidates\[[0-9]+\]")
FIELDS = ("token_ids", "logprobs")


def named(group: dict[str, Any]) -> dict[str, Any]:
    """A dumped group with every repeat replaced by the name of the first run it repeats."""
    first: dict[tuple[str, ...], str] = {}

    def stored(observation: dict[str, Any], name: str) -> dict[str, Any] | str:
        earlier = first.setdefault(("run", *(observation[field] for field in FIELDS)), name)
        if earlier != name:
            return earlier
        arrays = {field: first.setdefault((field, observation[field]), name) for field in FIELDS}
        return {**observation, **{field: earlier for field, earlier in arrays.items() if earlier != name}}

    reference = stored(group["reference"], REFERENCE)
    candidates = [{**candidate, "observation": stored(candidate["observation"], f"candidates[{i}]")}
                  for i, candidate in enumerate(group["candidates"])]
    return {**group, "reference": reference, "candidates": candidates}


def expanded(group: dict[str, Any]) -> dict[str, Any]:
    """A stored group with every name replaced by what it names; ValueError for a name of no earlier run."""
    runs: dict[str, Any] = {}

    def resolved(observation: Any, name: str) -> Any:
        if isinstance(observation, str):
            observation = _run(runs, observation, name)
        elif isinstance(observation, dict):
            observation = {**observation, **{field: _run(runs, value, f"{name}.{field}")[field]
                                             for field in FIELDS
                                             if isinstance(value := observation.get(field), str) and NAME.fullmatch(value)}}
        runs[name] = observation
        return observation

    reference = resolved(group.get("reference"), REFERENCE)
    candidates = [{**candidate, "observation": resolved(candidate.get("observation"), f"candidates[{i}]")}
                  if isinstance(candidate, dict) else candidate for i, candidate in enumerate(group["candidates"])]
    return {**group, "reference": reference, "candidates": candidates}


def _run(runs: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    run = runs.get(name)
    if not isinstance(run, dict):
        raise ValueError(f"{where}: {name!r} names no earlier run of the group")
    return run
