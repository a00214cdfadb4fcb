"""Shards of one run -> one results file whose cases equal those of an unsharded run."""
from __future__ import annotations

from pathlib import Path

from bi_bench.harness.results.file import CaseResult, ResultsFile
from bi_bench.harness.results.file import load_results
from bi_bench.harness.results.summary import summarize
from bi_bench.harness.suite.matrix import Shard
from bi_bench.harness.verify.validate import problems_of

MUST_MATCH = ("suite.sha256", "suite.quick", "model.id", "model.dtype", "model.weights_sha256",
              "environment.hardware", "environment.device", "backend.label")


def merge(paths: list[Path], command: list[str]) -> ResultsFile:
    shards = [(path, load_results(path)) for path in paths]
    for path, results in shards:
        problems = problems_of(results)
        if problems:
            raise ValueError(f"{path}: does not validate ({problems[0]})")
    first_path, first = shards[0]
    for path, results in shards[1:]:
        for field in MUST_MATCH:
            if results.field(field) != first.field(field):
                raise ValueError(f"{path}: {field} is {results.field(field)!r}, but {first_path} has "
                                 f"{first.field(field)!r}: not shards of one run")
    count, indices = _shard_numbers(shards)
    cases = _union_of_cases(shards)
    complete = sorted(indices) == list(range(1, count + 1))
    shard_label = None if complete else str(Shard(tuple(sorted(indices)), count))
    ordered = sorted(shards, key=lambda item: Shard.parse(item[1].suite.shard).indices)
    return ResultsFile(
        run_id=first.run_id.split("-shard")[0],
        command=command,
        started_at=min(r.started_at for _, r in shards),
        finished_at=max(r.finished_at for _, r in shards),
        suite=first.suite.model_copy(update={"shard": shard_label}),
        model=first.model,
        environment=first.environment,
        cases=cases,
        throughput=ordered[0][1].throughput,
        summary=summarize(cases, first.model.synthetic_weights, complete),
        backend=first.backend,
    )


def _shard_numbers(shards: list[tuple[Path, ResultsFile]]) -> tuple[int, list[int]]:
    numbers = []
    for path, results in shards:
        label = results.suite.shard
        if label is None or "," in label:
            raise ValueError(f"{path}: not a single shard (suite.shard is {label!r})")
        numbers.append(Shard.parse(label))
    counts = {number.count for number in numbers}
    indices = [number.indices[0] for number in numbers]
    if len(counts) != 1:
        raise ValueError(f"shards of different counts: {sorted(counts)}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"the same shard appears twice: {sorted(indices)}")
    return counts.pop(), indices


def _union_of_cases(shards: list[tuple[Path, ResultsFile]]) -> list[CaseResult]:
    by_index = {}
    for path, results in shards:
        for case in results.cases:
            if case.index in by_index:
                raise ValueError(f"{path}: case {case.id} is also in another shard")
            by_index[case.index] = case
    return [by_index[index] for index in sorted(by_index)]
