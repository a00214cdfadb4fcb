"""What a suite's results file weighs: a real results file of a smaller suite, grown to the bigger suite's run counts.

    python benchmarks/results_size.py results/random-tiny-qwen3-float32/<hardware>/qwen3-cpu-sized-<run>.json \
        --to suites/qwen3.yaml --out benchmarks/results/results_size-qwen3.json

A case's size follows from how many runs it holds and how many of them repeat an earlier run (stored by name):
with ignore_eos every run holds max_tokens tokens, packed at 4 bytes per token id and per logprob. So every case of
the real file is grown as `bi-bench run` would have written it under the bigger suite's counts: its needle groups
repeated to that suite's needle count and its runs repeated cyclically to that suite's run count, every copy of a run
that differed from the runs before it made to differ again (one logprob bit flipped), so the copies are stored as the
measured runs were; the throughput runs are repeated to its repeats. The same serialization of the real file must
give the real file's size, byte for byte, or the script refuses. It also prints the grown size with every run stored
in full (an upper bound) and with every value as JSON text (schema 2).
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bi_bench.harness.checks import CheckParams
from bi_bench.harness.results.file import MAX_RESULTS_BYTES, CaseResult, ResultsFile, load_results
from bi_bench.harness.results.observations import Group, Observation, group_digests
from bi_bench.harness.results.packed import FLOAT32, INT32, float_bytes, int_bytes, unpack
from bi_bench.harness.results.repeats import expanded
from bi_bench.harness.suite.load import LoadedSuite, load_suite
from bi_bench.harness.suite.matrix import CaseSpec, expand
from bi_bench.harness.suite.recorded import recorded_suite

PACKED = {"token_ids": INT32, "prompt_token_ids": INT32, "logprobs": FLOAT32, "reference_raw_logprobs": FLOAT32}
# Candidates per needle, as each check's run function loops; a check not named here must have the same parameters.
CANDIDATES: dict[str, Callable[[Any], int]] = {
    "batch_size": lambda p: len(p.batch_sizes) * p.trials,
    "order": lambda p: p.trials,
    "prefix_cache": lambda p: p.trials + 2,
    "chunked_prefill": lambda p: 2 * len(p.budgets),
    "repeat": lambda p: p.runs - 1,
    "unique_completions": lambda p: p.samples - 1,
}


def grow(results: ResultsFile, target: LoadedSuite) -> dict[str, Any]:
    """The results file as the target suite's counts would have made it, dumped as `bi-bench run` dumps it."""
    recorded = recorded_suite(results)
    measured = recorded.loaded
    check_same_matrix(recorded.cases, measured, target)
    needles = target.suite.workload.needles // measured.suite.workload.needles
    cases = [repeated(extended(case, full_runs(case.check, measured.checks[case.check],
                                                target.checks[case.check])), needles)
             for case in results.cases]
    data = results.model_copy(update={"cases": cases}).model_dump(mode="python")
    runs = data["throughput"]["runs"]
    data["throughput"]["runs"] = [{**run, "repeat": repeat} for repeat in range(target.suite.throughput.repeats)
                                  for run in runs if run["repeat"] == 0]
    return data


def check_same_matrix(cases: list[CaseSpec], measured: LoadedSuite, target: LoadedSuite) -> None:
    """Case for case the same matrix (check, mode, TP degree), kernel variants aside: they are named per device."""
    def shape(specs: list[CaseSpec]) -> list[tuple[str, str, int]]:
        return [(c.check, c.mode, c.tp) for c in specs]
    if shape(cases) != shape([c for model in target.suite.models for c in expand(target, model)]):
        raise SystemExit(f"{target.path}: another case matrix than the results file's suite")
    if target.suite.workload.needles % measured.suite.workload.needles:
        raise SystemExit(f"{target.path}: workload.needles is not a multiple of the measured suite's")


def full_runs(check: str, measured: CheckParams, full: CheckParams) -> tuple[int, int]:
    """(candidates per needle as measured, in the target suite)."""
    if check in CANDIDATES:
        return CANDIDATES[check](measured), CANDIDATES[check](full)
    if measured != full:
        raise SystemExit(f"checks.{check}: its parameters differ ({measured} vs {full}) and its run count is unknown")
    return 1, 1


def extended(case: CaseResult, runs: tuple[int, int]) -> CaseResult:
    """The case's groups with their candidates repeated cyclically from the measured count to the full one."""
    measured, full = runs
    if not case.observations or measured == full:
        return case
    groups = [grown(group, full) for group in case.observations]
    return case.model_copy(update=dict(observations=groups, digests=[group_digests(g) for g in groups]))


def grown(group: Group, count: int) -> Group:
    """Copies of a candidate that differed from every run before it differ again: one logprob bit flipped."""
    earlier = [group.reference]
    distinct = []
    for candidate in group.candidates:
        distinct.append(all(bits(candidate.observation) != bits(run) for run in earlier))
        earlier.append(candidate.observation)
    candidates = list(group.candidates)
    for i in range(len(candidates), count):
        source = i % len(group.candidates)
        copy = group.candidates[source]
        if distinct[source]:
            copy = copy.model_copy(update={"observation": flipped(copy.observation, i)})
        candidates.append(copy)
    return group.model_copy(update={"candidates": candidates})


def bits(observation: Observation) -> tuple[bytes, bytes]:
    return int_bytes(observation.token_ids), float_bytes(observation.logprobs)


def flipped(observation: Observation, salt: int) -> Observation:
    values = np.array(observation.logprobs, dtype=FLOAT32)
    values.view(np.int32)[salt % len(values)] ^= 1 + (salt // len(values))
    return observation.model_copy(update={"logprobs": values.astype(np.float64).tolist()})


def repeated(case: CaseResult, times: int) -> CaseResult:
    """The case with its needle groups repeated: one group per needle of the full suite."""
    return case.model_copy(update=dict(observations=case.observations * times, digests=case.digests * times))


def unnamed(data: Any) -> Any:
    """The dumped file with every run or array that repeats an earlier one stored in full again."""
    if isinstance(data, dict) and "prompt_token_ids" in data:  # a group of runs
        return expanded(data)
    if isinstance(data, dict):
        return {key: unnamed(value) for key, value in data.items()}
    if isinstance(data, list):
        return [unnamed(item) for item in data]
    return data


def as_json_text(data: Any) -> Any:
    """The dumped file with every packed array as a JSON list again: how schema 2 stored it."""
    if isinstance(data, dict):
        return {key: unpack(value, PACKED[key]) if key in PACKED and isinstance(value, str) else as_json_text(value)
                for key, value in data.items()}
    if isinstance(data, list):
        return [as_json_text(item) for item in data]
    return data


def serialized(data: Any) -> int:
    return len(json.dumps(data, indent=1)) + 1


def run_seconds(results: ResultsFile) -> float:
    return (datetime.fromisoformat(results.finished_at) - datetime.fromisoformat(results.started_at)).total_seconds()


def report(path: Path, target_path: Path) -> dict[str, Any]:
    results = load_results(path)
    real_bytes = path.stat().st_size
    dumped = results.model_dump(mode="python")
    if serialized(dumped) != real_bytes:
        raise SystemExit(f"{path}: its re-serialization is not its {real_bytes} bytes; the size model does not hold")
    grown_data = grow(results, load_suite(target_path))
    return dict(
        results=str(path), hardware=results.environment.hardware, cases=len(results.cases),
        measured=dict(suite=results.suite.path, bytes=real_bytes, run_seconds=round(run_seconds(results)),
                      bytes_every_run_stored=serialized(unnamed(dumped))),
        grown_to=str(target_path), bytes=serialized(grown_data), bytes_every_run_stored=serialized(unnamed(grown_data)),
        bytes_as_json_text=serialized(as_json_text(unnamed(grown_data))), limit_bytes=MAX_RESULTS_BYTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results file that `bi-bench run` wrote")
    parser.add_argument("--to", type=Path, default=Path("suites/qwen3.yaml"), help="the suite whose counts to grow to")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args()
    found = report(args.results, args.to)
    text = json.dumps(found, indent=1)
    print(text)
    print(f"{args.results}: {found['measured']['bytes'] / 1e6:.2f} MB as run ({found['cases']} cases, "
          f"{found['measured']['run_seconds'] / 60:.0f} min); grown to {args.to}'s counts: {found['bytes'] / 1e6:.2f} MB "
          f"({found['bytes_every_run_stored'] / 1e6:.2f} MB with every run stored, "
          f"{found['bytes_as_json_text'] / 1e6:.2f} MB as JSON text); limit {MAX_RESULTS_BYTES / 1e6:.0f} MB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
