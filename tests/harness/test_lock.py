"""The lock: which installed packages differ from it, and what a results file records of the environment."""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import torch

from bi_bench.harness.results.file import Environment
from bi_bench.harness.run import lock
from bi_bench.harness.run.environment import environment


def test_pins_skip_comments_and_normalise_names() -> None:
    assert lock.pins("# header\nJinja2==3.1.6\n\ntyping_extensions==4.16.0  # why\n") == {
        "jinja2": "3.1.6", "typing-extensions": "4.16.0"}


def test_a_local_build_tag_is_the_locked_version_and_anything_else_differs() -> None:
    locked = {"torch": "2.13.0", "numpy": "2.4.6", "gguf": "0.19.0"}
    present = {"torch": "2.13.0+cpu", "numpy": "2.4.5", "rich": "15.0.0"}
    assert lock.differences(locked, present) == ["gguf: 0.19.0 locked, not installed",
                                                 "numpy: 2.4.6 locked, 2.4.5 installed",
                                                 "rich: 15.0.0 installed, not in the lock"]
    assert lock.differences(locked | {"rich": "15.0.0"}, present | {"numpy": "2.4.6", "gguf": "0.19.0"}) == []


def test_the_lock_pins_every_package_it_names_to_one_version() -> None:
    text = lock.LOCK.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in lines) and len(lock.pins(text)) == len(lines)
    assert lock.pins(text)["torch"] == torch.__version__.split("+")[0]


def test_a_results_file_records_the_lock_and_the_versions_that_change_bits() -> None:
    recorded = environment("cpu")
    assert recorded.lock_sha256 == lock.digest() and len(recorded.lock_sha256) == 64
    assert recorded.lock_differences == lock.lock_differences()
    assert set(recorded.packages) == {"torch", "transformers", "triton", "numpy", "gguf", "tokenizers"}
    assert recorded.packages["torch"] == torch.__version__
    assert recorded.packages["transformers"] == importlib.metadata.version("transformers")


def test_an_older_file_without_them_is_written_back_byte_for_byte(tmp_path: Path) -> None:
    data = environment("cpu").model_dump(mode="json")
    older = {key: value for key, value in data.items() if key not in ("packages", "lock_sha256", "lock_differences")}
    parsed = Environment.model_validate(older)
    assert json.dumps(parsed.model_dump(mode="json")) == json.dumps(older)
    assert parsed.package_versions == {"torch": older["torch"], "transformers": older["transformers"],
                                       "triton": older["triton"]}
