"""Leaf-by-leaf comparison of a recorded value with what it should be, one line per differing field."""
from __future__ import annotations

import math
from typing import Any


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
