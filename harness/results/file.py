"""The results file: its schema, and atomic reading and writing."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError

from bi_bench.harness.results.base import AddedLater, Record
from bi_bench.harness.results.metrics import Metrics, Verdict
from bi_bench.harness.results.observations import Group, GroupDigests
from bi_bench.harness.suite.schema import Mode
from bi_bench.harness.suite.yaml_source import dotted

# 2: throughput per setting, environment.cuda and nvidia_driver, model.lm_head_fp32.
# 3: observations as packed int32 / float32 arrays (a repeated run stored by name), digests of those bytes and of
#    each prompt, suite.source;
#    environment.cpu_isa, cpu_capability, torch_threads and torch_cpu_config; the CPU hardware slug's ISA class.
SCHEMA_VERSION = 3
MAX_RESULTS_BYTES = 25_000_000  # GitHub refuses files over 100 MB; a results file stays well below


def _current_schema(version: Any) -> Any:
    if version != SCHEMA_VERSION:
        raise ValueError(f"{version!r} is not {SCHEMA_VERSION}: a schema {version!r} file, written by another "
                         f"bi-bench version; rerun its suite to regenerate it")
    return version


SchemaVersion = Annotated[Literal[SCHEMA_VERSION], BeforeValidator(_current_schema)]


class CaseResult(Record):
    index: int  # position in the suite's full case matrix (shards keep it, so merges restore the order)
    id: str
    check: str
    mode: Mode
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

    @property
    def is_control(self) -> bool:
        """A default-mode case of a check that must diverge there: it shows the check can fail."""
        return self.mode == "default" and self.control


class SuiteRecord(Record):
    name: str
    path: str
    sha256: str  # of `source`
    source: str  # the suite file's text, as it ran: validate re-expands the case matrix from it
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


class Environment(AddedLater, Record):
    added_later = ("packages", "lock_sha256", "lock_differences")

    device: str
    devices: list[str]
    cpu_model: str
    cpu_isa: list[str]  # of avx2, avx512f, avx512_bf16, amx_bf16, amx_tile, fma: the /proc/cpuinfo flags present
    cpu_capability: str  # torch.backends.cpu.get_cpu_capability(): the vector ISA of torch's own CPU kernels
    torch_threads: int  # torch.get_num_threads() when the run started
    cpu_kernels: str  # the build of bi-bench's C++ kernels: avx2, avx512f or avx512_bf16 (kernels/cpu/extension.py)
    torch_cpu_config: list[str]  # the BLAS, MKL, oneDNN, OpenMP and CPU-capability lines of torch.__config__.show()
    hardware: str  # slug naming the results folder; on CPU it ends with the ISA class (avx2, avx512bf16, amx, ...)
    python: str
    torch: str
    cuda: str | None  # torch.version.cuda where CUDA is available
    nvidia_driver: str | None
    triton: str | None
    transformers: str
    bi_bench: str
    git_commit: str | None
    git_dirty: bool | None
    # since 2026-12-04:
    packages: dict[str, str | None] | None = None  # versions of the packages that can change bits (harness.lock)
    lock_sha256: str | None = None  # of requirements.lock, in a checkout; None installed from a wheel
    lock_differences: list[str] | None = None  # where the installed packages are not the lock's; [] when they are

    @property
    def package_versions(self) -> dict[str, str | None]:
        """`packages`, or for an older file the versions it did record."""
        return self.packages or {"torch": self.torch, "transformers": self.transformers, "triton": self.triton}


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
    # tokens/s of default mode at the same TP degree with its own kernels, over this setting's; None: no such runs
    overhead: float | None


class Throughput(AddedLater, Record):
    added_later = ("not_run",)

    prompts: int
    max_tokens: int
    runs: list[ThroughputRun]  # in the order they ran: the settings of one TP degree interleaved
    settings: list[SettingThroughput]  # every setting measured, in the order it first ran
    # headline: TP 1, each mode's own kernels; None where the backend could not run the mode (not_applicable, an
    # engine_error), as for a server that runs one mode
    default: ModeThroughput | None
    invariant: ModeThroughput | None
    overhead: float | None  # default tokens/s over invariant tokens/s: how many times slower invariant mode is
    not_run: dict[str, str] | None = None  # setting label (mode/tpN/kernels) -> why it has no runs; since 2026-12-04


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


class BackendRecord(Record):
    """The engine under test: bi-bench's own, or another behind a backend (bi_bench.harness.backends)."""

    name: str
    label: str | None = None  # the suite's name for it (name, and attn_implementation where set)
    version: str | None = None  # the package's, or what the server's /version answered
    command: list[str] | None = None  # how the harness started it (server backends it starts)
    env: dict[str, str] | None = None  # the environment it set for it
    base_url: str | None = None
    reported: dict[str, Any] | None = None  # what it said of itself (max_num_seqs, prefix caching, ...)


class ResultsFile(AddedLater, Record):
    added_later = ("backend",)

    schema_version: SchemaVersion = SCHEMA_VERSION
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
    backend: BackendRecord | None = None  # since 2026-12-04; older files ran bi-bench's own engine

    def field(self, dotted_field: str) -> object:
        """The value at "section.name" (None where the section is absent, as `backend` in older files)."""
        section, name = dotted_field.split(".")
        return getattr(getattr(self, section), name, None)


def write_atomic(path: Path, data: dict[str, Any], max_bytes: int | None = None) -> None:
    """Writes `data` as JSON in one step; ValueError, writing nothing, when it would exceed `max_bytes`."""
    text = json.dumps(data, indent=1) + "\n"
    if max_bytes is not None and len(text) > max_bytes:
        raise ValueError(f"{path}: {len(text) / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB a results file "
                         f"may have; not written (fewer needles, samples or max_tokens, or run it in shards)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save(path: Path, results: ResultsFile) -> None:
    write_atomic(path, results.model_dump(mode="python"), MAX_RESULTS_BYTES)


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
