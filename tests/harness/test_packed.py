"""Observations travel as packed int32 / float32 arrays: every bit survives, and nothing is silently rounded."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from pydantic import ValidationError

from bi_bench.harness.results.observations import Candidate, Group, Observation, digest, sha256
from bi_bench.harness.results.packed import FLOAT32, INT32, float_bytes, int_bytes, pack, unpack

SPECIAL = [float(np.float32(v)) for v in (0.0, -0.0, float("-inf"), -1e-45, -1.1754942e-38, -3.4028235e38,
                                          -0.6931471824645996, np.nextafter(np.float32(-1.0), np.float32(0.0)))]


def double_bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def test_float32_values_round_trip_bit_for_bit() -> None:
    observation = Observation(token_ids=list(range(len(SPECIAL))), logprobs=SPECIAL)
    again = Observation.model_validate_json(observation.model_dump_json())
    assert double_bits(again.logprobs) == double_bits(SPECIAL) and again.token_ids == observation.token_ids
    assert observation.model_dump()["logprobs"] == pack(np.array(SPECIAL, dtype=FLOAT32).tobytes())


def test_nan_payload_survives() -> None:
    nan = struct.unpack("<f", b"\x01\x00\xc0\x7f")[0]
    [again] = unpack(pack(float_bytes([nan])), FLOAT32)
    assert math.isnan(again) and struct.pack("<f", again) == b"\x01\x00\xc0\x7f"


def test_digest_is_of_the_stored_bytes() -> None:
    observation = Observation(token_ids=[3, 1, 2], logprobs=[-0.5, -1.0, -2.0])
    assert digest(observation).token_ids == sha256(np.array([3, 1, 2], dtype=INT32).tobytes())
    assert digest(observation).logprobs == sha256(np.array([-0.5, -1.0, -2.0], dtype=FLOAT32).tobytes())


@pytest.mark.parametrize("value", [0.1, -1.0000000000000002, 1e-300])
def test_a_value_that_is_not_a_float32_is_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="not exactly a float32"):
        Observation(token_ids=[1], logprobs=[value])
    with pytest.raises(ValueError, match="not exactly a float32"):
        float_bytes([value])


def test_a_token_id_beyond_int32_is_refused() -> None:
    with pytest.raises(ValueError, match="int32"):
        int_bytes([1 << 31])
    with pytest.raises(ValidationError, match="int32"):
        Group(prompt_token_ids=[1 << 40], reference=Observation(token_ids=[], logprobs=[]),
              candidates=[{"label": "x", "observation": {"token_ids": [], "logprobs": []}}])


@pytest.mark.parametrize(("text", "message"), [("not base64!", "not base64"), ("AAA=", "whole number")])
def test_malformed_packing_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        Observation.model_validate({"token_ids": text, "logprobs": ""})
    assert error.value.errors()[0]["loc"] == ("token_ids",)


def test_packing_is_compact() -> None:
    """A logprob as JSON text takes about 20 characters, packed about 5.3."""
    logprobs = [float(np.float32(-1.0 - i / 7)) for i in range(128)]
    assert len(pack(float_bytes(logprobs))) < len(str(logprobs)) / 3


def group_of(*runs: Observation) -> Group:
    return Group(prompt_token_ids=[7], reference=runs[0],
                 candidates=[Candidate(label=f"c{i}", observation=run) for i, run in enumerate(runs[1:])])


def stored_bits(group: Group) -> list[tuple[bytes, bytes]]:
    runs = [group.reference, *(c.observation for c in group.candidates)]
    return [(int_bytes(run.token_ids), float_bytes(run.logprobs)) for run in runs]


def test_a_repeated_run_or_array_is_stored_once_and_named() -> None:
    same, zero, negative_zero = (Observation(token_ids=[1, 2], logprobs=[-0.5, v]) for v in (-1.0, 0.0, -0.0))
    other_tokens = Observation(token_ids=[1, 3], logprobs=[-0.5, -1.0])
    group = group_of(same, same, zero, negative_zero, zero, other_tokens)
    stored = [c["observation"] for c in group.model_dump()["candidates"]]
    assert stored[0] == "reference" and stored[3] == "candidates[1]"
    assert stored[1]["token_ids"] == "reference" and stored[2]["token_ids"] == "reference"  # -0.0 is not 0.0
    assert stored[1]["logprobs"] != stored[2]["logprobs"]
    assert stored[4]["logprobs"] == "reference" and stored[4]["token_ids"] != "reference"
    again = Group.model_validate_json(group.model_dump_json())
    assert stored_bits(again) == stored_bits(group)


@pytest.mark.parametrize(("where", "name"), [("observation", "candidates[0]"), ("observation", "candidates[5]"),
                                             ("token_ids", "candidates[1]"), ("logprobs", "candidates[9]")])
def test_a_name_must_be_an_earlier_run_of_the_group(where: str, name: str) -> None:
    data = group_of(*(Observation(token_ids=[i], logprobs=[-1.0 - i]) for i in range(3))).model_dump()
    if where == "observation":
        data["candidates"][0]["observation"] = name
    else:
        data["candidates"][0]["observation"][where] = name
    with pytest.raises(ValidationError, match="names no earlier run of the group"):
        Group.model_validate(data)
