"""The base types every schema of the harness builds on (suites, results and reproduction files), and the
leaf-by-leaf comparison of a recorded value with what it should be."""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

PositiveInt = Annotated[int, Field(ge=1, le=1 << 20)]


class Strict(BaseModel):
    """A document someone wrote (a suite): unknown fields and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddedLater(BaseModel):
    """A schema that gained fields after files were written: those fields are left out while None, so an older
    file, read and written back, keeps its bytes (and its suite its resolved config)."""

    added_later: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items()
                if value is not None or key not in self.added_later}


def differences(recorded: Any, expected: Any, where: str, source: str = "recomputed") -> list[str]:
    """`where: recorded X, <source> Y` per differing leaf; floats must match exactly (NaN matches NaN)."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        keys = list(dict.fromkeys([*recorded, *expected]))
        return [p for key in keys
                for p in differences(recorded.get(key), expected.get(key), f"{where}.{key}", source)]
    if isinstance(recorded, list) and isinstance(expected, list) and len(recorded) == len(expected):
        return [p for i, (a, b) in enumerate(zip(recorded, expected))
                for p in differences(a, b, f"{where}[{i}]", source)]
    if _same(recorded, expected):
        return []
    return [f"{where}: recorded {short(recorded)}, {source} {short(expected)}"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
