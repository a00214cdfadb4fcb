from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from filelock import FileLock

from bi_bench.harness.cli.main import main
from bi_bench.harness.results.packed import FLOAT32, float_bytes, pack, unpack
from bi_bench.harness.results.repeats import expanded

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "suites" / "tiny.yaml"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_document() -> dict[str, Any]:
    return yaml.safe_load(TINY.read_text())


def write_suite(folder: Path, document: dict[str, Any] | str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def small_document() -> dict[str, Any]:
    """A few checks of the tiny suite: enough for resume, shard and validate tests, quick to run."""
    document = tiny_document()
    document["name"] = "small"
    document["models"][0]["tp"] = [1]
    document["checks"] = {"batch_size": {"batch_sizes": [1, 4, 12], "trials": 1}, "prefix_cache": {"trials": 1},
                          "prefill_decode": {"batch_size": 3}}
    document["throughput"] = {"prompts": 2, "max_tokens": 2, "repeats": 1}
    return document


def results_files(out: Path) -> list[Path]:
    return sorted(out.glob("*/*/*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def own_observation(group: dict[str, Any], index: int) -> dict[str, Any]:
    """Candidate `index`'s stored observation, written out in full where it named an earlier run it repeats."""
    observation = expanded(group)["candidates"][index]["observation"]
    group["candidates"][index]["observation"] = observation
    return observation


def nudge_logprob(observation: dict[str, Any], position: int = 0) -> None:
    """Moves one packed logprob of a stored observation to the next float32 up: the smallest edit there is."""
    logprobs = unpack(observation["logprobs"], FLOAT32)
    logprobs[position] = float(np.nextafter(np.float32(logprobs[position]), np.float32(np.inf)))
    observation["logprobs"] = pack(float_bytes(logprobs))


@pytest.fixture(scope="session")
def worker_id() -> str:
    """xdist's fixture of that name, also when the tests run without xdist (-p no:xdist)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "master")


def shared_run(factory: pytest.TempPathFactory, worker_id: str, name: str, document: dict[str, Any]
               ) -> tuple[Path, Path, int]:
    """(suite, results file, exit code) of one run, made once per session and shared by the xdist workers."""
    shared = factory.getbasetemp().parent if worker_id != "master" else factory.getbasetemp()
    folder = shared / f"shared-{name}"
    marker = folder / "done.json"
    with FileLock(shared / f"shared-{name}.lock"):
        if not marker.exists():
            folder.mkdir(exist_ok=True)
            suite = write_suite(folder, document)
            result = invoke("run", suite, "--out", folder / "out")
            [path] = results_files(folder / "out")
            marker.write_text(json.dumps([str(suite), str(path), result.exit_code]))
    suite, path, exit_code = json.loads(marker.read_text())
    return Path(suite), Path(path), exit_code


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, Path]:
    """(suite path, results file) of one clean run of the small suite."""
    suite, path, exit_code = shared_run(tmp_path_factory, worker_id, "small", small_document())
    assert exit_code == 0
    return suite, path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[int, Path]:
    """(exit code, results file) of one run of suites/tiny.yaml."""
    _, path, exit_code = shared_run(tmp_path_factory, worker_id, "tiny", tiny_document())
    return exit_code, path


@pytest.fixture
def copy_results(tmp_path: Path, small_run: tuple[Path, Path]) -> Callable[[], Path]:
    def copy() -> Path:
        target = tmp_path / "results.json"
        target.write_text(small_run[1].read_text())
        return target

    return copy
