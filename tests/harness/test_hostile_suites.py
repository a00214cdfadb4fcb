"""Bad suites end in one line naming file:line and the field, exit 2, never a traceback."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import invoke, tiny_document, write_suite


def assert_one_line_error(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


TINY_TEXT = yaml.safe_dump(tiny_document(), sort_keys=False)

HOSTILE = {
    "broken yaml": ("models: [\n  - id: x\n", "invalid YAML"),
    "python object tag": ("name: !!python/object/apply:os.system ['touch /tmp/pwned']\n", "python/object"),
    "python name tag": ("!!python/name:os.system\n", "python/name"),
    "not a mapping": ("- a\n- b\n", "a suite is a mapping"),
    "empty": ("", "a suite is a mapping"),
    "scalar": ("42\n", "a suite is a mapping"),
    "aliases": ("name: &a tiny\ndescription: *a\n", "aliases are not allowed"),
    "unknown check": (TINY_TEXT.replace("  order:\n", "  sorting:\n"), "unknown check 'sorting'"),
    "unknown field": (TINY_TEXT.replace("device: cpu\n", "device: cpu\ncolour: blue\n"), "colour"),
    "wrong type": (TINY_TEXT.replace("max_tokens: 4\n", "max_tokens: many\n", 1), "max_tokens"),
    "string for int": (TINY_TEXT.replace("max_tokens: 4\n", "max_tokens: '4'\n", 1), "max_tokens"),
    "negative trials": (TINY_TEXT.replace("trials: 1\n", "trials: -3\n", 1), "checks.batch_size.trials"),
    "bad check param": (TINY_TEXT.replace("batch_sizes:", "batch_sizez:"), "checks.batch_size.batch_sizez"),
    "bad mode": (TINY_TEXT.replace("- invariant\n- default\n", "- fast\n"), "modes[0]"),
    "unknown variant": (TINY_TEXT.replace("modes:", "kernels:\n  invariant:\n    matmul: [warp_speed]\nmodes:"),
                        "kernels.invariant.matmul[0]"),
    "unknown op": (TINY_TEXT.replace("modes:", "kernels:\n  invariant:\n    softmax: [torch]\nmodes:"),
                   "kernels.invariant.softmax: unknown op"),
    "cuda-only variant on cpu": (TINY_TEXT.replace("modes:", "kernels:\n  default:\n    matmul: [triton_split_k]\nmodes:"),
                                 "does not run on cpu"),
    "tp check without tp": (TINY_TEXT.replace("  order:\n", "  tp: {}\n  order:\n"), "no model lists a tp degree above 1"),
    "min above max": (TINY_TEXT.replace("min_len: 4", "min_len: 400"), "workload"),
    "needle_len reversed": (TINY_TEXT.replace("min_len: 4", "min_len: 4\n  needle_len: [30, 20]"),
                            "needle_len [30, 20] has its minimum above its maximum"),
    "needle_len one value": (TINY_TEXT.replace("min_len: 4", "min_len: 4\n  needle_len: [30]"),
                             "workload.needle_len"),
    "needle_len past max_model_len": (TINY_TEXT.replace("min_len: 4", "min_len: 4\n  needle_len: [30, 5000]"),
                                      "max_model_len"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_suite(tmp_path: Path, name: str) -> None:
    text, expected = HOSTILE[name]
    assert text != TINY_TEXT
    suite = write_suite(tmp_path, text)
    message = assert_one_line_error(invoke("run", suite, "--out", tmp_path / "out"))
    assert expected in message
    assert message.startswith(f"error: {suite}:")
    assert not (tmp_path / "out").exists()


def test_error_names_the_line_of_the_field(tmp_path: Path) -> None:
    text = TINY_TEXT.replace("budgets:\n    - 8\n", "budgets:\n    - 8\n    - zero\n")
    suite = write_suite(tmp_path, text)
    message = assert_one_line_error(invoke("run", suite))
    assert f"{suite}:{line_of(text, '- zero')}: checks.chunked_prefill.budgets[1]:" in message


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert "not UTF-8" in assert_one_line_error(invoke("run", binary))
    assert "no such file" in assert_one_line_error(invoke("run", tmp_path / "missing.yaml"))


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard(shard: str) -> None:
    from conftest import TINY

    assert "--shard" in assert_one_line_error(invoke("run", TINY, "--shard", shard, "--dry-run"))


def junk() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=8), inner, max_size=3), max_leaves=8)


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, prefix + (index,))
    return found


TINY_PATHS = paths(tiny_document())


def replaced(path: tuple, value: Any) -> Any:
    document = copy.deepcopy(tiny_document())
    if not path:
        return value
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return document


def assert_dry_run_is_clean(tmp_path: Path, text: str) -> None:
    suite = write_suite(tmp_path, text, "fuzz.yaml")
    result = invoke("run", suite, "--dry-run")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert_one_line_error(result)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(path=st.sampled_from(TINY_PATHS), value=junk())
def test_fuzz_replaced_field(tmp_path: Path, path: tuple, value: Any) -> None:
    assert_dry_run_is_clean(tmp_path, yaml.safe_dump(replaced(path, value)))


@FUZZ
@given(document=junk())
def test_fuzz_whole_document(tmp_path: Path, document: Any) -> None:
    assert_dry_run_is_clean(tmp_path, yaml.safe_dump(document))


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_raw_text(tmp_path: Path, text: str) -> None:
    assert_dry_run_is_clean(tmp_path, text)
