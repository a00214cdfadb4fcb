"""What a suite's results file weighs: a few cases run for real, the whole file extrapolated from them.

    python benchmarks/results_size.py suites/qwen3-cpu-sized.yaml --needles 1 \
        --fewer unique_completions.samples=8 --fewer batch_size.trials=1 --out benchmarks/results/results_size.json

A case's size follows from how many runs it holds and how many of them repeat an earlier run (stored by name):
with ignore_eos every run holds max_tokens tokens, packed at 4 bytes per token id and per logprob. So the script
runs, per check, its first invariant-family case (invariant or tp-invariant mode, whose runs repeat where the claim
holds) and its last default-mode case at its lowest TP degree (the negative-control kernels, whose runs differ),
with `--needles` needles and, for the costliest checks, `--fewer` runs; then it serializes, as `bi-bench run`
does, the file the full suite would write: each case is its check's measured case of its mode family, its needle
groups repeated to the suite's needle count and its runs repeated to the suite's run count, every copy of a run
that differed from the runs before it made to differ again (one logprob bit flipped), so the copies are stored
as the measured runs were. It also prints the size with every run stored in full (an upper bound) and with every
value as JSON text (schema 2), and a rough run time: seconds per measured case times the cases it stands for,
scaled by needles and runs (TP 2 and 4 run slower than the TP 1 cases measured for most checks).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bi_bench.harness.checks import CheckParams
from bi_bench.harness.engines import EnginePool
from bi_bench.harness.environment import environment
from bi_bench.harness.matrix import CaseSpec, expand
from bi_bench.harness.model_info import model_record
from bi_bench.harness.observations import Group, Observation, group_digests
from bi_bench.harness.packed import FLOAT32, INT32, float_bytes, int_bytes, unpack
from bi_bench.harness.prompts import PromptSource
from bi_bench.harness.repeats import expanded
from bi_bench.harness.results import MAX_RESULTS_BYTES, CaseResult, ResultsFile, SuiteRecord, ThroughputRun
from bi_bench.harness.runner import run_case
from bi_bench.harness.suite import ModelSpec, Suite
from bi_bench.harness.suite_loader import LoadedSuite, load_suite
from bi_bench.harness.summary import summarize
from bi_bench.harness.throughput import from_runs, throughput_settings

PACKED = {"token_ids": INT32, "prompt_token_ids": INT32, "logprobs": FLOAT32, "reference_raw_logprobs": FLOAT32}
Kind = tuple[str, str]  # check, mode family ("invariant" or "default")
# Candidates per needle of the checks whose runs --fewer may cut, as their run functions loop.
CANDIDATES: dict[str, Callable[[Any], int]] = {"batch_size": lambda p: len(p.batch_sizes) * p.trials,
                                               "unique_completions": lambda p: p.samples - 1}


def family(spec: CaseSpec) -> str:
    return "default" if spec.mode == "default" else "invariant"


def representatives(specs: list[CaseSpec]) -> dict[Kind, CaseSpec]:
    chosen: dict[Kind, CaseSpec] = {}
    for spec in specs:
        kind = (spec.check, family(spec))
        lowest_tp = min(s.tp for s in specs if s.check == spec.check)
        if kind[1] == "invariant":
            chosen.setdefault(kind, spec)
        elif spec.tp == lowest_tp:
            chosen[kind] = spec
    return chosen


def measure(suite_path: Path, needles: int, fewer: dict[str, dict[str, int]], cache: Path) -> dict[str, Any]:
    loaded = load_suite(suite_path)
    model = loaded.suite.models[0]
    specs = expand(loaded, model)
    measuring = reduced(loaded, needles, fewer)
    pool = EnginePool(model, loaded.suite.device)
    base = pool.get()
    prompts = PromptSource(loaded.suite.workload, base)
    chosen = representatives(specs)
    done = cached(cache, measuring)
    measured: dict[Kind, tuple[CaseResult, float]] = {}
    for kind, spec in chosen.items():
        if spec.id not in done:
            start = time.perf_counter()
            result, _ = run_case(dataclasses.replace(spec, params=measuring.checks[spec.check]), pool, measuring,
                                 prompts)
            done[spec.id] = result, time.perf_counter() - start
            with open(cache, "a") as handle:
                handle.write(json.dumps(dict(key=cache_key(measuring, spec.id), seconds=done[spec.id][1],
                                             case=result.model_dump(mode="python"))) + "\n")
        measured[kind] = done[spec.id]
        print(f"{spec.id}: {measured[kind][1]:.1f} s, {measured[kind][0].verdict}", flush=True)
    scale = {check: full_runs(check, loaded.checks[check], measuring.checks[check])
             for check in loaded.checks}
    needle_scale = loaded.suite.workload.needles // needles
    full = {kind: repeated(extended(case, scale[kind[0]]), needle_scale) for kind, (case, _) in measured.items()}
    cases = [as_spec(full[spec.check, family(spec)], spec) for spec in specs]
    data = results_file(loaded, suite_path, model, base, cases).model_dump(mode="python")
    seconds = sum(measured[s.check, family(s)][1] * needle_scale * scale[s.check][1] / scale[s.check][0]
                  for s in specs)
    return dict(
        suite=str(suite_path), cases=len(specs), measured_with=dict(needles=needles, fewer=fewer),
        bytes=serialized(data), bytes_every_run_stored=serialized(unnamed(data)),
        bytes_as_json_text=serialized(as_json_text(unnamed(data))), limit_bytes=MAX_RESULTS_BYTES,
        measured={f"{check} ({kind})": dict(case=chosen[check, kind].id,
                                            cases=sum((s.check, family(s)) == (check, kind) for s in specs),
                                            verdict=case.verdict, seconds=round(sec, 1),
                                            runs_measured=sum(len(g.candidates) + 1 for g in case.observations),
                                            bytes_full_case=serialized(full[check, kind].model_dump(mode="python")))
                  for (check, kind), (case, sec) in measured.items()},
        estimated_full_run_seconds=round(seconds))


def cache_key(measuring: LoadedSuite, case_id: str) -> str:
    return json.dumps([case_id, measuring.sha256, measuring.resolved()], sort_keys=True)


def cached(cache: Path, measuring: LoadedSuite) -> dict[str, tuple[CaseResult, float]]:
    """Cases measured by an earlier, interrupted run with the same suite and reductions, by case id."""
    found = {}
    for line in cache.read_text().splitlines() if cache.exists() else []:
        entry = json.loads(line)
        case = CaseResult.model_validate(entry["case"])
        if entry["key"] == cache_key(measuring, case.id):
            found[case.id] = case, entry["seconds"]
    return found


def reduced(loaded: LoadedSuite, needles: int, fewer: dict[str, dict[str, int]]) -> LoadedSuite:
    """The suite as measured: `needles` needles, and the `fewer` parameters of the checks named there."""
    unknown = set(fewer) - set(CANDIDATES)
    if unknown:
        raise SystemExit(f"--fewer: only {', '.join(CANDIDATES)} (not {', '.join(sorted(unknown))})")
    workload = loaded.suite.workload.model_copy(update={"needles": needles})
    checks = {name: params.model_copy(update=fewer.get(name, {})) for name, params in loaded.checks.items()}
    return dataclasses.replace(loaded, suite=loaded.suite.model_copy(update={"workload": workload}), checks=checks)


def full_runs(check: str, full: CheckParams, measured: CheckParams) -> tuple[int, int]:
    """(candidates per needle as measured, in the full suite)."""
    if check not in CANDIDATES:
        return 1, 1
    return CANDIDATES[check](measured), CANDIDATES[check](full)


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


def as_spec(case: CaseResult, spec: CaseSpec) -> CaseResult:
    return case.model_copy(update=dict(index=spec.index, id=spec.id, mode=spec.mode, tp=spec.tp,
                                       kernel_overrides=dict(spec.kernels), control=spec.control))


def results_file(loaded: LoadedSuite, suite_path: Path, model: ModelSpec, base, cases: list[CaseResult]
                 ) -> ResultsFile:
    return ResultsFile(
        run_id=f"{loaded.suite.name}-extrapolated", command=["bi-bench", "run", str(suite_path)],
        started_at="", finished_at="",
        suite=SuiteRecord(name=loaded.suite.name, path=str(suite_path), sha256=loaded.sha256, source=loaded.text,
                          config=loaded.resolved(), shard=None, quick=False),
        model=model_record(base), environment=environment(loaded.suite.device), cases=cases,
        throughput=throughput(loaded.suite, model), summary=summarize(cases, True, complete=True))


def throughput(suite: Suite, model: ModelSpec) -> Any:
    """One timed run per setting and repeat, as the run records them (the seconds are made up; the shape is not)."""
    runs = [ThroughputRun(mode=s.mode, tp=s.tp, kernel_overrides=dict(s.kernels), repeat=repeat,
                          tokens=suite.throughput.prompts * suite.throughput.max_tokens, seconds=1.2345678901234567)
            for repeat in range(suite.throughput.repeats) for s in throughput_settings(suite, model)]
    return from_runs(suite.throughput.prompts, suite.throughput.max_tokens, runs)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--needles", type=int, default=1, help="needles per measured case (the suite's, or fewer)")
    parser.add_argument("--fewer", action="append", default=[], metavar="CHECK.PARAM=N",
                        help=f"measure with fewer runs: a run-count parameter of {' or '.join(CANDIDATES)}")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--cache", type=Path, default=Path("results_size.cases.jsonl"),
                        help="each measured case is appended here, and a rerun takes it from here")
    args = parser.parse_args()
    start = time.perf_counter()
    fewer: dict[str, dict[str, int]] = {}
    for item in args.fewer:
        key, value = item.split("=")
        check, param = key.split(".")
        fewer.setdefault(check, {})[param] = int(value)
    report = measure(args.suite, args.needles, fewer, args.cache)
    report["measured_seconds"] = round(time.perf_counter() - start)
    text = json.dumps(report, indent=1)
    print(text)
    print(f"{args.suite}: {report['cases']} cases, {report['bytes'] / 1e6:.2f} MB "
          f"({report['bytes_every_run_stored'] / 1e6:.2f} MB with every run stored, "
          f"{report['bytes_as_json_text'] / 1e6:.2f} MB as JSON text); limit {MAX_RESULTS_BYTES / 1e6:.0f} MB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
