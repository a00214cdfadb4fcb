"""Runs a suite: per model, its cases (journaled one by one), then throughput, then the results file."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from bi_bench.engine import SamplingParams
from bi_bench.harness.backends import EngineError, NotApplicable
from bi_bench.harness.checks import CHECKS, CaseContext, Skip
from bi_bench.harness.results.file import BackendRecord, CaseResult, Environment, ResultsFile, SuiteRecord, save, slug
from bi_bench.harness.results.metrics import case_metrics, verdict
from bi_bench.harness.results.observations import group_digests
from bi_bench.harness.results.summary import summarize
from bi_bench.harness.run.environment import environment
from bi_bench.harness.run.journal import Journal, JournalHeader
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.run.throughput import measure
from bi_bench.harness.suite.load import LoadedSuite
from bi_bench.harness.suite.matrix import CaseSpec, Shard, expand
from bi_bench.harness.suite.prompts import PromptSource
from bi_bench.harness.suite.schema import ModelSpec, Suite


NOT_RUN_BY = {Skip: "skipped", NotApplicable: "not_applicable", EngineError: "engine_error"}


@dataclass(frozen=True)
class RunOptions:
    out: Path
    command: list[str]
    shard: Shard | None = None
    resume: bool = False

    @property
    def shard_label(self) -> str | None:
        return str(self.shard) if self.shard else None


class Reporter(Protocol):
    def model_started(self, model: str, total: int, done: int) -> None: ...
    def case_started(self, case: CaseSpec) -> None: ...
    def case_finished(self, case: CaseResult, tokens: int, seconds: float) -> None: ...
    def throughput_started(self) -> None: ...


def run_suite(loaded: LoadedSuite, options: RunOptions, reporter: Reporter) -> list[tuple[Path, ResultsFile]]:
    env = environment(loaded.suite.device)
    run_id = _resumable_run_id(loaded, options, env) if options.resume else None
    run_id = run_id or _new_run_id(loaded, options)
    return [run_model(loaded, model, options, env, run_id, reporter) for model in loaded.suite.models]


def run_model(loaded: LoadedSuite, model: ModelSpec, options: RunOptions, env: Environment, run_id: str,
              reporter: Reporter) -> tuple[Path, ResultsFile]:
    path = results_path(options.out, model, env, run_id)
    if path.exists():
        return path, ResultsFile.model_validate_json(path.read_text())
    pool = EnginePool(model, loaded.suite.device)
    try:
        return _run_model(loaded, model, options, env, run_id, reporter, path, pool)
    finally:
        pool.close()


def _run_model(loaded: LoadedSuite, model: ModelSpec, options: RunOptions, env: Environment, run_id: str,
               reporter: Reporter, path: Path, pool: EnginePool) -> tuple[Path, ResultsFile]:
    source, record = pool.backend.describe(pool)
    prompts = PromptSource(loaded.suite.workload, source)
    journal = Journal(path.with_suffix(".journal"))
    contents = journal.read() if options.resume and journal.path.exists() else None
    if contents is None:
        journal = Journal.create(journal.path, _header(loaded, model, options, run_id))
        contents = journal.read()
    cases = expand(loaded, model)
    if options.shard:
        cases = options.shard.cases(cases)
    reporter.model_started(f"{model.id} ({model.dtype})", len(cases), len(contents.cases))
    for result in run_cases([spec for spec in cases if spec.id not in contents.cases], pool, loaded, prompts,
                            reporter):
        journal.add_case(result)
        contents.cases[result.id] = result
    if contents.throughput is None:
        reporter.throughput_started()
        contents.throughput = measure(pool, loaded.suite, prompts)
        journal.add_throughput(contents.throughput)
    results = ResultsFile(
        run_id=run_id,
        command=options.command,
        started_at=contents.header.started_at,
        finished_at=now(),
        suite=SuiteRecord(name=loaded.suite.name, path=str(loaded.path), sha256=loaded.sha256, source=loaded.text,
                          config=loaded.resolved(), shard=options.shard_label, quick=contents.header.quick),
        model=record,
        environment=env,
        cases=[contents.cases[spec.id] for spec in cases],
        throughput=contents.throughput,
        summary=summarize([contents.cases[spec.id] for spec in cases], record.synthetic_weights,
                          complete=options.shard is None),
        backend=BackendRecord(label=model.backend.label if model.backend else None, **pool.backend.record()),
    )
    save(path, results)
    journal.path.unlink()
    return path, results


def run_cases(specs: Iterable[CaseSpec], pool: EnginePool, loaded: LoadedSuite, prompts: PromptSource,
              reporter: Reporter) -> Iterator[CaseResult]:
    """The one case loop (run and reproduce): each result is yielded, to be kept, before it is reported finished."""
    for spec in specs:
        reporter.case_started(spec)
        start = time.perf_counter()
        result, tokens = run_case(spec, pool, loaded, prompts)
        seconds = time.perf_counter() - start
        yield result
        reporter.case_finished(result, tokens, seconds)


def run_case(spec: CaseSpec, pool: EnginePool, loaded: LoadedSuite, prompts: PromptSource) -> tuple[CaseResult, int]:
    """The case's result and how many tokens it generated or scored."""
    suite = loaded.suite
    sampling = SamplingParams(**suite.sampling.model_dump())
    case_args = spec.setting.engine_args()
    contexts: list[CaseContext] = []
    groups, not_run, reason = [], "not_applicable", pool.backend.lacking(_needs(spec, suite))
    if reason is None:
        try:
            for needle in range(suite.workload.needles):
                ctx = CaseContext(pool, case_args, sampling, prompts, _case_rng(suite.workload.seed, spec, needle))
                contexts.append(ctx)
                groups.append(CHECKS[spec.check].run(ctx, spec.params))
        except (Skip, NotApplicable, EngineError) as exc:
            not_run, reason, groups = _not_run_verdict(exc), str(exc), []
    kernels = next((ctx.kernels for ctx in contexts if ctx.kernels), {})
    metrics = case_metrics(groups) if groups else None
    result = CaseResult(
        index=spec.index, id=spec.id, check=spec.check, mode=spec.mode, tp=spec.tp, kernels=kernels,
        kernel_overrides=dict(spec.kernels), params=spec.params.model_dump(mode="json"), control=spec.control,
        verdict=verdict(metrics, CHECKS[spec.check].claims(spec.mode)) if metrics else not_run, reason=reason,
        metrics=metrics, observations=groups, digests=[group_digests(g) for g in groups],
    )
    return result, sum(ctx.tokens for ctx in contexts)


def _not_run_verdict(exc: Exception) -> str:
    return next(verdict for kind, verdict in NOT_RUN_BY.items() if isinstance(exc, kind))


def _needs(spec: CaseSpec, suite: Suite) -> tuple[str, ...]:
    """What the case asks of the backend: its check's needs, and a seed per request when it samples."""
    return CHECKS[spec.check].needs + (("seed",) if suite.sampling.temperature > 0 else ())


def _case_rng(seed: int, spec: CaseSpec, needle: int) -> random.Random:
    """Not seeded by mode, TP or kernels: every setting of a check sees the same prompts, so all compare alike."""
    return random.Random(f"{seed}/{spec.check}/{needle}")


def results_dir(out: Path, model: ModelSpec, env: Environment) -> Path:
    return out / slug(model.label) / env.hardware


def results_path(out: Path, model: ModelSpec, env: Environment, run_id: str) -> Path:
    return results_dir(out, model, env) / f"{run_id}.json"


def _header(loaded: LoadedSuite, model: ModelSpec, options: RunOptions, run_id: str) -> JournalHeader:
    return JournalHeader(run_id=run_id, started_at=now(), suite_sha256=loaded.sha256, shard=options.shard_label,
                         quick=loaded.is_quick, device=loaded.suite.device, model=model.id, dtype=model.dtype)


def _resumable_run_id(loaded: LoadedSuite, options: RunOptions, env: Environment) -> str | None:
    """The latest unfinished run of this suite (same shard, --quick and device) under `out`."""
    wanted = dict(suite_sha256=loaded.sha256, shard=options.shard_label, quick=loaded.is_quick,
                  device=loaded.suite.device)
    found = []
    for model in loaded.suite.models:
        for journal_path in results_dir(options.out, model, env).glob("*.journal"):
            contents = Journal(journal_path).read()
            header = contents.header if contents else None
            if header and all(getattr(header, k) == v for k, v in wanted.items()):
                found.append((header.started_at, header.run_id))
    return max(found)[1] if found else None


def _new_run_id(loaded: LoadedSuite, options: RunOptions) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z"
    shard = f"-shard{options.shard.indices[0]}of{options.shard.count}" if options.shard else ""
    return f"{loaded.suite.name}-{stamp}{shard}{'-quick' if loaded.is_quick else ''}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
