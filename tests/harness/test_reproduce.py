"""reproduce runs a file's invariant-mode cases again and compares every digest: a forgery that agrees with
itself and with its suite passes validate, and fails here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from bi_bench.engine import ModelLoadError
from bi_bench.harness.backends import bi_bench_engine
from bi_bench.harness.results.file import load_results, save
from bi_bench.harness.results.reproduction import reproduction_path
from conftest import invoke, load, shared_run, small_document
from forge import consistent


@pytest.fixture(scope="session")
def other_seed_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The small suite run with another sampling seed: the same matrix and prompts, other tokens."""
    document = small_document()
    document["sampling"] = {**document["sampling"], "seed": 4321}
    _, path, exit_code = shared_run(tmp_path_factory, worker_id, "small-other-seed", document)
    assert exit_code == 0
    return path


def reproduction_of(path: Path) -> Path:
    [found] = path.parent.glob(f"{path.stem}.reproduced-*.json")
    assert found == reproduction_path(path, load(found)["environment"]["hardware"])
    return found


def test_a_genuine_file_reproduces(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    result = invoke("reproduce", path, "--sample", "1")
    assert result.exit_code == 0, result.output
    assert "all 1 cases reproduced on" in result.output
    written = reproduction_of(path)
    data = load(written)
    assert data["reproduced"] and data["selection"] == "--sample 1" and data["results_file"] == path.name
    [case] = data["cases"]
    assert case["outcome"] == "reproduced" and case["id"].split("/")[1] == "invariant"
    assert invoke("validate", written).exit_code == 0

    data["cases"][0]["outcome"] = "differs"
    written.write_text(json.dumps(data))
    result = invoke("validate", written)
    assert result.exit_code == 1 and f"cases[0].outcome ({case['id']}): recorded 'differs'" in result.output


def test_cases_of_another_run_spliced_under_this_suite_pass_validate_but_not_reproduce(
        copy_results: Callable[[], Path], other_seed_run: Path) -> None:
    path = copy_results()
    genuine, other = load_results(path), load_results(other_seed_run)
    assert [c.digests for c in other.cases] != [c.digests for c in genuine.cases]
    save(path, consistent(genuine, list(other.cases)))
    assert invoke("validate", path).exit_code == 0

    result = invoke("reproduce", path, "--cases", "batch_size/invariant/*")
    assert result.exit_code == 1, result.output
    assert "batch_size/invariant/tp1 does not reproduce on" in result.output
    assert "digests[0].reference" in result.output
    written = reproduction_of(path)
    assert not load(written)["reproduced"] and invoke("validate", written).exit_code == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine could run a cuda file")
def test_a_cuda_file_cannot_run_here(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    results = load_results(path)
    suite = results.suite.model_copy(update={"config": {**results.suite.config, "device": "cuda"}})
    save(path, results.model_copy(update={"suite": suite}))
    assert invoke("validate", path).exit_code == 0
    result = invoke("reproduce", path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "recorded on cuda, and this machine has no CUDA device" in result.stderr
    assert list(path.parent.glob("*.reproduced-*")) == []


def test_a_model_this_machine_lacks_cannot_run_here(copy_results: Callable[[], Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(model: str, **_) -> None:
        raise ModelLoadError(f"model {model!r}: not in the local hub cache and no network")

    monkeypatch.setattr(bi_bench_engine, "LLM", unavailable)
    result = invoke("reproduce", copy_results())
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "not in the local hub cache" in result.stderr


def test_other_weights_cannot_run_here(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    results = load_results(path)
    save(path, results.model_copy(update={"model": results.model.model_copy(update={"params_count": 1})}))
    result = invoke("reproduce", path, "--cases", "batch_size/*")
    assert result.exit_code == 2
    assert "model.params_count: recorded 1, this machine loads" in result.stderr


def test_no_matching_case_and_an_invalid_file(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    result = invoke("reproduce", path, "--cases", "batch_size/default/*")  # default mode is never reproduced
    assert result.exit_code == 2 and "no invariant-mode case that ran matches --cases" in result.stderr
    data = load(path)
    data["cases"].pop(0)
    path.write_text(json.dumps(data))
    result = invoke("reproduce", path)
    assert result.exit_code == 1 and "does not validate" in result.output


def test_a_reproduction_of_a_since_changed_file_is_rejected(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    assert invoke("reproduce", path, "--cases", "prefill_decode/*").exit_code == 0
    data = load(path)
    data["command"].append("--edited")
    path.write_text(json.dumps(data))
    result = invoke("validate", reproduction_of(path))
    assert result.exit_code == 1 and "is no longer the file that was reproduced" in result.output


def test_another_environment_is_named_package_by_package_and_still_reproduces(
        copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    data = load(path)
    here = data["environment"]["packages"]
    data["environment"]["packages"] = {**here, "transformers": "0.0.1", "numpy": "9.9"}
    path.write_text(json.dumps(data))
    result = invoke("reproduce", path, "--sample", "1")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "environment.packages" in line]
    assert lines == [f"{path}: environment.packages.transformers: recorded '0.0.1', here {here['transformers']!r} "
                     f"(reproducing all the same)",
                     f"{path}: environment.packages.numpy: recorded '9.9', here {here['numpy']!r} "
                     f"(reproducing all the same)"]
    assert "all 1 cases reproduced on" in result.output
