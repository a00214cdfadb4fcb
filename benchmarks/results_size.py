"""What a suite's results file weighs: a few cases run for real, the whole file extrapolated from them.

    python benchmarks/results_size.py suites/qwen3-cpu-sized.yaml --needles 1 --out benchmarks/results/results_size.json

A case's size follows from its check's parameters and from how many of its runs repeat an earlier one (stored by
name): with ignore_eos every run holds max_tokens tokens, packed at 4 bytes per token id and per logprob. So the
script runs, per check, its first invariant-family case (invariant or tp-invariant mode: runs repeat, if the
claim holds) and its last default-mode case at its lowest TP degree (the negative-control kernels: runs differ),
with `--needles` needles each (one group of runs per needle, so the file repeats the measured groups to the suite's
needle count), then serializes the file the full run would write, as `bi-bench run` does, each case taken from its
check's measured case of its mode family. It also prints the size with no run stored by name (every run distinct:
an upper bound) and with every value as JSON text (schema 2), and a rough run time: measured seconds per case
times the cases it stands for, times the needle ratio (TP 2 and 4 run slower than the TP 1 cases measured).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from bi_bench.harness.engines import EnginePool
from bi_bench.harness.environment import environment
from bi_bench.harness.matrix import CaseSpec, expand
from bi_bench.harness.model_info import model_record
from bi_bench.harness.packed import FLOAT32, INT32, unpack
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


def measure(suite_path: Path, needles: int) -> dict[str, Any]:
    loaded = load_suite(suite_path)
    model = loaded.suite.models[0]
    specs = expand(loaded, model)
    workload = loaded.suite.workload.model_copy(update={"needles": needles})
    measuring = dataclasses.replace(loaded, suite=loaded.suite.model_copy(update={"workload": workload}))
    pool = EnginePool(model, loaded.suite.device)
    base = pool.get()
    prompts = PromptSource(loaded.suite.workload, base)
    measured: dict[Kind, tuple[CaseResult, float]] = {}
    for kind, spec in representatives(specs).items():
        start = time.perf_counter()
        result, _ = run_case(spec, pool, measuring, prompts)
        measured[kind] = result, time.perf_counter() - start
        print(f"{spec.id}: {measured[kind][1]:.1f} s, {result.verdict}", flush=True)
    scale = loaded.suite.workload.needles // needles
    full = {kind: repeated(case, scale) for kind, (case, _) in measured.items()}
    cases = [as_spec(full[spec.check, family(spec)], spec) for spec in specs]
    data = results_file(loaded, suite_path, model, base, cases).model_dump(mode="python")
    return dict(
        suite=str(suite_path), cases=len(specs), needles_measured=needles, bytes=serialized(data),
        bytes_every_run_stored=serialized(unnamed(data)), bytes_as_json_text=serialized(as_json_text(unnamed(data))),
        limit_bytes=MAX_RESULTS_BYTES,
        measured={f"{check} ({kind})": dict(case=representatives(specs)[check, kind].id,
                                            cases=sum((s.check, family(s)) == (check, kind) for s in specs),
                                            verdict=case.verdict, seconds=round(seconds, 1),
                                            bytes_one_case=serialized(full[check, kind].model_dump(mode="python")))
                  for (check, kind), (case, seconds) in measured.items()},
        estimated_full_run_seconds=round(scale * sum(measured[s.check, family(s)][1] for s in specs)))


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
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    report = measure(args.suite, args.needles)
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
