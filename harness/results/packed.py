"""Token ids and logprobs as packed arrays: base64 of little-endian int32 / float32.

The engine's logprobs are float32 (log_softmax of fp32 logits), so float32 keeps every bit; a value that is not
exactly a float32 is refused rather than rounded. Digests hash the same bytes the file stores.
"""
from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator, PlainSerializer

INT32 = np.dtype("<i4")
FLOAT32 = np.dtype("<f4")


def int_bytes(values: list[int]) -> bytes:
    wide = np.asarray(values, dtype=np.int64).reshape(-1)
    packed = wide.astype(INT32)
    if not np.array_equal(packed, wide):
        raise ValueError("a token id does not fit in int32")
    return packed.tobytes()


def float_bytes(values: list[float]) -> bytes:
    wide = np.asarray(values, dtype=np.float64).reshape(-1)
    packed = wide.astype(FLOAT32)
    if not np.array_equal(packed.astype(np.float64).view(np.uint64), wide.view(np.uint64)):
        raise ValueError("a logprob is not exactly a float32: packing would change its bits")
    return packed.tobytes()


def pack(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unpack(text: str, dtype: np.dtype) -> list:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64 of little-endian {dtype.name}") from None
    if len(data) % dtype.itemsize:
        raise ValueError(f"{len(data)} bytes is not a whole number of {dtype.name} values")
    return np.frombuffer(data, dtype=dtype).tolist()


def _ints(value: Any) -> Any:
    if isinstance(value, str):
        return unpack(value, INT32)
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        int_bytes(value)
    return value


def _floats(value: Any) -> Any:
    if isinstance(value, str):
        return unpack(value, FLOAT32)
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        float_bytes(value)
    return value


PackedInts = Annotated[list[int], BeforeValidator(_ints),
                       PlainSerializer(lambda v: pack(int_bytes(v)), return_type=str)]
PackedFloats = Annotated[list[float], BeforeValidator(_floats),
                         PlainSerializer(lambda v: pack(float_bytes(v)), return_type=str)]
