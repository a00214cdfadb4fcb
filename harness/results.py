"""The results file: its schema, and atomic reading and writing."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from bi_bench.harness.metrics import Metrics, Verdict
from bi_bench.harness.observations import Group, GroupDigests, Record
from bi_bench.harness.yaml_source import dotted

SCHEMA_VERSION = 2  # 2: throughput per setting, environment.cuda and nvidia_driver, model.lm_head_fp32


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
    lm_head_fp32: bool  # logits computed in fp32


class Environment(Record):
    device: str
    devices: list[str]
    cpu_model: str
    hardware: str  # slug naming the results folder
    python: str
    torch: str
    cuda: str | None  # torch.version.cuda where CUDA is available
    nvidia_driver: str | None
    triton: str | None
    transformers: str
    bi_bench: str
    git_commit: str | None
    git_dirty: bool | None


SettingKey = tuple[str, int, tuple[tuple[str, str], ...]]  # mode, TP degree, sorted kernel overrides


class RunSetting(Record):
    mode: str
    tp: int
    kernel_overrides: dict[str, str]  # the variants the suite asked for; {}: the mode's own picks

    @property
    def key(self) -> SettingKey:
        return self.mode, self.tp, tuple(sorted(self.kernel_overrides.items()))


class ThroughputRun(RunSetting):
    repeat: int
    tokens: int
    seconds: float


class ModeThroughput(Record):
    tokens: int
    seconds: float
    tokens_per_s: float


class SettingThroughput(ModeThroughput, RunSetting):
    overhead: float  # tokens/s of default mode at the same TP degree with its own kernels, over this setting's


class Throughput(Record):
    prompts: int
    max_tokens: int
    runs: list[ThroughputRun]  # in the order they ran: the settings of one TP degree interleaved
    settings: list[SettingThroughput]  # every setting measured, in the order it first ran
    default: ModeThroughput  # headline: TP 1, each mode's own kernels
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
    schema_version: Literal[2] = SCHEMA_VERSION
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

    @field_validator("schema_version", mode="before")
    @classmethod
    def _current_schema(cls, version: Any) -> Any:
        if version != SCHEMA_VERSION:
            raise ValueError(f"{version!r} is not {SCHEMA_VERSION}: the file was written by another bi-bench "
                             f"version; rerun its suite to regenerate it")
        return version


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


def overrides_text(kernels: dict[str, str]) -> str:
    """A kernels or kernel_overrides mapping as `op=variant` pairs, sorted by op ("" when empty)."""
    return ", ".join(f"{op}={name}" for op, name in sorted(kernels.items()))


def slug(text: str) -> str:
    """A results folder's name for a model id or hardware."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"
