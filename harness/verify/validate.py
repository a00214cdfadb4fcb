"""Checks a results file: its schema; its cases against the case matrix of the suite it carries; every observation
against the lengths its sampling implies and each check's prompts against one another; then every digest, metric,
verdict and summary figure recomputed from the raw observations and throughput runs. Each problem names the field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bi_bench.harness.checks import CHECKS
from bi_bench.harness.results.base import differences
from bi_bench.harness.results.file import CaseResult, ResultsFile, read_json
from bi_bench.harness.results.metrics import NOT_RUN, case_metrics, verdict
from bi_bench.harness.results.observations import group_digests, sha256
from bi_bench.harness.results.reproduction import (ReproductionFile, is_reproduction, reproduction_path,
                                          reproduction_problems)
from bi_bench.harness.results.summary import summarize
from bi_bench.harness.run.throughput import from_runs
from bi_bench.harness.suite.matrix import CaseSpec
from bi_bench.harness.suite.recorded import recorded_suite
from bi_bench.harness.suite.schema import Suite
from bi_bench.harness.suite.yaml_source import dotted


def validate_file(path: Path) -> list[str]:
    """The problems of a results or reproduction file, each naming its field; an unreadable file raises instead."""
    if is_reproduction(path):
        return reproduction_file_problems(path)
    try:
        results = ResultsFile.model_validate(read_json(path))
    except ValidationError as exc:
        return schema_problems(exc)
    return problems_of(results)


def reproduction_file_problems(path: Path) -> list[str]:
    """A reproduction must name a valid results file beside it, byte for byte the one it re-ran."""
    try:
        reproduction = ReproductionFile.model_validate(read_json(path))
    except ValidationError as exc:
        return schema_problems(exc)
    target = path.with_name(reproduction.results_file)
    if not target.is_file():
        return [f"results_file: {reproduction.results_file} is not beside it"]
    expected = reproduction_path(target, reproduction.environment.hardware).name
    if path.name != expected:
        return [f"file name: a reproduction on {reproduction.environment.hardware} of {target.name} is {expected}"]
    if sha256(target.read_bytes()) != reproduction.results_sha256:
        return [f"results_sha256: {reproduction.results_file} is no longer the file that was reproduced"]
    try:
        results = ResultsFile.model_validate(read_json(target))
    except ValidationError as exc:
        return [f"results_file: {reproduction.results_file}: {schema_problems(exc)[0]}"]
    problems = problems_of(results)
    if problems:
        return [f"results_file: {reproduction.results_file} does not validate ({problems[0]})"]
    return reproduction_problems(reproduction, results)


def schema_problems(exc: ValidationError) -> list[str]:
    errors = exc.errors()
    other_schema = [e for e in errors if e["loc"] == ("schema_version",)]  # its other fields mean other things
    return [f"{dotted(e['loc']) or 'file'}: {e['msg']}" for e in other_schema or errors]


def problems_of(results: ResultsFile) -> list[str]:
    """Every problem of a schema-valid results file."""
    try:
        recorded = recorded_suite(results)
    except ValueError as exc:
        return [str(exc)]
    problems = differences(results.suite.config, recorded.loaded.resolved(), "suite.config")
    problems += matrix_problems(results.cases, recorded.cases)
    problems += length_problems(results.cases, recorded.loaded.suite)
    problems += prompt_problems(results.cases)
    return problems + recompute(results)


def matrix_problems(cases: list[CaseResult], expected: list[CaseSpec]) -> list[str]:
    """The cases must be exactly the expected ones, in matrix order, each as the matrix defines it."""
    by_index = {spec.index: spec for spec in expected}
    problems, seen = [], set()
    for i, case in enumerate(cases):
        spec = by_index.get(case.index)
        if spec is None or case.index in seen:
            problems.append(f"cases[{i}]: {case.id!r} (index {case.index}) is "
                            f"{'a second case of that index' if spec else 'not in the matrix of suite.source'}")
            continue
        seen.add(case.index)
        problems += named(case, differences(_definition(case), _definition(spec), f"cases[{i}]", "the matrix has"))
        problems += named(case, _kernel_problems(case, f"cases[{i}]"))
    problems += [f"cases: {spec.id!r} (index {spec.index}) is missing" for spec in expected if spec.index not in seen]
    indices = [case.index for case in cases]
    if indices != sorted(indices):
        problems.append("cases: not in matrix order (by index)")
    return problems


def named(case: CaseResult, problems: list[str]) -> list[str]:
    """Each problem of a case says which case it is, by the id the file gives it."""
    return [f"{problem} (case {case.id!r})" for problem in problems]


def _definition(case: CaseResult | CaseSpec) -> dict[str, Any]:
    """What the matrix fixes about a case."""
    if isinstance(case, CaseSpec):
        return dict(index=case.index, id=case.id, check=case.check, mode=case.mode, tp=case.tp,
                    kernel_overrides=dict(case.kernels), params=case.params.model_dump(mode="json"),
                    control=case.control)
    return case.model_dump(include={"index", "id", "check", "mode", "tp", "kernel_overrides", "params", "control"})


def _kernel_problems(case: CaseResult, where: str) -> list[str]:
    if case.verdict in NOT_RUN:
        return []
    return [f"{where}.kernels.{op}: ran {case.kernels.get(op)!r}, but the case asked for {name!r}"
            for op, name in case.kernel_overrides.items() if case.kernels.get(op) != name]


def length_problems(cases: list[CaseResult], suite: Suite) -> list[str]:
    """Every run has as many tokens as the needle's sampling implies (the schema holds one logprob per token), and a
    case one group of observations per needle."""
    return [p for i, case in enumerate(cases) for p in named(case, _case_lengths(case, suite, f"cases[{i}]"))]


def _case_lengths(case: CaseResult, suite: Suite, where: str) -> list[str]:
    problems = []
    if case.observations and len(case.observations) != suite.workload.needles:
        problems.append(f"{where}.observations: {len(case.observations)} needles, but workload.needles is "
                        f"{suite.workload.needles}")
    for g, group in enumerate(case.observations):
        runs = [("reference", group.reference)] + [(f"candidates[{c}].observation", candidate.observation)
                                                   for c, candidate in enumerate(group.candidates)]
        problems += [p for name, run in runs
                     for p in _run_length(len(run.token_ids), suite, f"{where}.observations[{g}].{name}")]
        if not group.prompt_token_ids:
            problems.append(f"{where}.observations[{g}].prompt_token_ids: empty")
    return problems


def _run_length(tokens: int, suite: Suite, where: str) -> list[str]:
    sampling = suite.sampling
    if sampling.ignore_eos and tokens != sampling.max_tokens:
        return [f"{where}: {tokens} tokens, but sampling.max_tokens={sampling.max_tokens} with ignore_eos "
                f"implies {sampling.max_tokens}"]
    if not 1 <= tokens <= sampling.max_tokens:
        return [f"{where}: {tokens} tokens, but sampling.max_tokens is {sampling.max_tokens}"]
    return []


def prompt_problems(cases: list[CaseResult]) -> list[str]:
    """Every case of a check draws its needles from the same seeded stream, whatever its mode, TP or kernels."""
    first: dict[str, tuple[str, list[list[int]]]] = {}
    problems = []
    for i, case in enumerate(cases):
        if not case.observations:
            continue
        prompts = [group.prompt_token_ids for group in case.observations]
        seen_id, seen = first.setdefault(case.check, (case.id, prompts))
        problems += named(case, [f"cases[{i}].observations[{g}].prompt_token_ids: not the prompt of {seen_id!r}, "
                                 f"though every case of a check sees the same needles"
                                 for g, (a, b) in enumerate(zip(prompts, seen)) if a != b])
    return problems


def recompute(results: ResultsFile) -> list[str]:
    problems = []
    for index, case in enumerate(results.cases):
        problems += named(case, _case_problems(case, f"cases[{index}]"))
    summary = summarize(results.cases, results.model.synthetic_weights, complete=results.suite.shard is None)
    problems += differences(results.summary.model_dump(), summary.model_dump(), "summary")
    t = results.throughput
    try:
        expected = from_runs(t.prompts, t.max_tokens, t.runs, t.not_run)
    except ZeroDivisionError:
        return [*problems, "throughput.runs: a setting has no tokens or no time"]
    except ValueError as exc:
        return [*problems, f"throughput.runs: {exc}"]
    return problems + differences(t.model_dump(), expected.model_dump(), "throughput")


def _case_problems(case: CaseResult, where: str) -> list[str]:
    if case.check not in CHECKS:
        return [f"{where}.check: unknown check {case.check!r}"]
    digests = [group_digests(g).model_dump() for g in case.observations]
    problems = differences([d.model_dump() for d in case.digests], digests, f"{where}.digests")
    if not case.observations:
        if case.verdict not in NOT_RUN or case.metrics is not None:
            problems.append(f"{where}.observations: none recorded, so verdict must be one of {', '.join(NOT_RUN)} "
                            f"and metrics null")
        elif not case.reason:
            problems.append(f"{where}.reason: a {case.verdict} case needs a reason")
        return problems
    metrics = case_metrics(case.observations)
    recorded = case.metrics.model_dump() if case.metrics else None
    problems += differences(recorded, metrics.model_dump(), f"{where}.metrics")
    problems += differences(case.verdict, verdict(metrics, CHECKS[case.check].claims(case.mode)), f"{where}.verdict")
    return problems
