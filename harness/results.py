"""The results file: its schema, and atomic reading and writing."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from bi_bench.harness.metrics import Metrics, Verdict
from bi_bench.harness.observations import Group, GroupDigests, Record
from bi_bench.harness.yaml_source import dotted

SCHEMA_VERSION = 1


class CaseResult(Record):
    index: int  # position in the suite's full case matrix (shards keep it, so merges restore the order)
    id: str
    check: str
    mode: str
    tp: int
    kernels: dict[str, str]  # the variant each op actually ran (empty when skipped before an engine was built)
    kernel_overrides: dict[str, str]  # the variants the suite asked for
    params: dict[str, Any]
    control: bool  # in default mode: a negative control that must diverge
    verdict: Verdict
    reason: str | None = None  # why it was skipped
    metrics: Metrics | None = None
    observations: list[Group] = Field(default_factory=list)
    digests: list[GroupDigests] = Field(default_factory=list)


class SuiteRecord(Record):
    name: str
    path: str
    sha256: str
    config: dict[str, Any]  # resolved: defaults filled in, --device and --quick applied
    shard: str | None = Field(pattern=r"^[0-9]+(,[0-9]+)*/[0-9]+$")  # "I/N" ("I,J/N" merged); None: all cases
    quick: bool


class ModelRecord(Record):
    id: str
    dtype: str
    revision: str | None
    weights_sha256: str | None
    architecture: str
    params_count: int
    synthetic_weights: bool


class Environment(Record):
    device: str
    devices: list[str]
    cpu_model: str
    hardware: str  # slug naming the results folder
    python: str
    torch: str
    triton: str | None
    transformers: str
    bi_bench: str
    git_commit: str | None
    git_dirty: bool | None


class ThroughputRun(Record):
    mode: str
    repeat: int
    tokens: int
    seconds: float


class ModeThroughput(Record):
    tokens: int
    seconds: float
    tokens_per_s: float


class Throughput(Record):
    prompts: int
    max_tokens: int
    runs: list[ThroughputRun]  # in the order they ran: modes interleaved
    default: ModeThroughput
    invariant: ModeThroughput
    overhead: float  # default tokens/s over invariant tokens/s: how many times slower invariant mode is


class Summary(Record):
    cases: int
    verdicts: dict[Verdict, int]
    claims: int  # cases where invariance is claimed (pass or fail)
    claims_held: int
    controls: int  # default-mode cases that must diverge
    controls_diverged: int
    no_control_diverged: bool  # nothing showed that the checks can fail
    ok: bool  # every claim held, every control diverged, and (in a complete file) at least one did
    validated: bool  # ok, real weights, at least one claim, every case of the suite present and none skipped


class ResultsFile(Record):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    command: list[str]
    started_at: str
    finished_at: str
    suite: SuiteRecord
    model: ModelRecord
    environment: Environment
    cases: list[CaseResult]
    throughput: Throughput
    summary: Summary


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save(path: Path, results: ResultsFile) -> None:
    write_atomic(path, results.model_dump(mode="python"))


def read_json(path: Path) -> Any:
    """The parsed file; OSError or ValueError (as one line) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({type(exc).__name__})") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})".splitlines()[0]) from None


def load_results(path: Path) -> ResultsFile:
    """A schema-valid results file; ValueError naming the first bad field otherwise."""
    try:
        return ResultsFile.model_validate(read_json(path))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ValueError(f"{path}: {dotted(error['loc']) or 'file'}: {error['msg']}") from None


def slug(text: str) -> str:
    """A results folder's name for a model id or hardware."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"
