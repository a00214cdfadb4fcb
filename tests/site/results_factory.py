"""Results files for the site tests, built from the harness's own matrix, metric, verdict and summary code, so
each one also passes `bi-bench validate` (the tiny suite takes half a minute; these take milliseconds)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from bi_bench.harness.checks import CHECKS
from bi_bench.harness.results.file import (CaseResult, Environment, ModelRecord, ResultsFile, SuiteRecord, ThroughputRun,
                                      save, slug, write_atomic)
from bi_bench.harness.results.metrics import case_metrics, verdict
from bi_bench.harness.results.observations import Candidate, Group, Observation, group_digests, sha256
from bi_bench.harness.results.reproduction import (ReproducedCase, ReproductionFile, outcome, reproducible,
                                          reproduction_path)
from bi_bench.harness.results.summary import summarize
from bi_bench.harness.run.throughput import from_runs
from bi_bench.harness.suite.load import LoadedSuite, load_suite
from bi_bench.harness.suite.matrix import CaseSpec, expand

CHECK_NAMES = ("batch_size", "order", "prefix_cache", "repeat", "unique_completions")
TOKENS = 6
INVARIANT_KERNELS = {"matmul": "cpu_min_rows", "rmsnorm": "cpu_halving"}
DEFAULT_KERNELS = {"matmul": "torch", "rmsnorm": "torch"}
TimedSetting = tuple[str, int, dict[str, str], float]  # mode, TP degree, kernel overrides, seconds per 64 tokens
SETTINGS: tuple[TimedSetting, ...] = (  # beyond the TP 1 headline: several kernel variants and TP degrees
    ("default", 2, {}, 0.6), ("invariant", 2, {}, 1.5), ("default", 1, {"matmul": "split_k"}, 1.25),
    ("invariant", 1, {"matmul": "cpu_min_rows"}, 2.5))
SUITE_PATH = "suites/test.yaml"


def suite_text(model_id: str, tp: list[int]) -> str:
    document = dict(name="test", device="cpu", models=[dict(id=model_id, dtype="bfloat16", tp=tp)],
                    modes=["invariant", "default"], sampling=dict(max_tokens=TOKENS, ignore_eos=True),
                    checks={name: {} for name in CHECK_NAMES})
    return yaml.safe_dump(document, sort_keys=False)


def suite(model_id: str, tp: list[int]) -> LoadedSuite:
    return load_suite(Path(SUITE_PATH), raw=suite_text(model_id, tp).encode())


def float32(value: float) -> float:
    return float(np.float32(value))


def observation(shift: float, from_position: int) -> Observation:
    logprobs = [float32(-1.0 - i / 8 + (shift * (i + 1) if i >= from_position else 0.0)) for i in range(TOKENS)]
    return Observation(token_ids=list(range(10, 10 + TOKENS)), logprobs=logprobs)


def group(drift: float, seed: int, label: str) -> Group:
    """A needle and two candidates; with drift > 0 the second candidate leaves the reference at token `seed`."""
    return Group(prompt_token_ids=[1, 2, 3], reference=observation(0.0, 0),
                 candidates=[Candidate(label="batch=1 pos=0", observation=observation(0.0, 0)),
                             Candidate(label=label, observation=observation(drift, seed % TOKENS))])


def case(spec: CaseSpec, drift: float, label: str) -> CaseResult:
    groups = [group(drift, spec.index, label)]
    metrics = case_metrics(groups)
    return CaseResult(index=spec.index, id=spec.id, check=spec.check, mode=spec.mode, tp=spec.tp,
                      kernels=DEFAULT_KERNELS if spec.mode == "default" else INVARIANT_KERNELS, kernel_overrides={},
                      params=spec.params.model_dump(mode="json"), control=spec.control,
                      verdict=verdict(metrics, CHECKS[spec.check].claims(spec.mode)), metrics=metrics,
                      observations=groups, digests=[group_digests(g) for g in groups])


def skipped(spec: CaseSpec) -> CaseResult:
    return CaseResult(index=spec.index, id=spec.id, check=spec.check, mode=spec.mode, tp=spec.tp, kernels={},
                      kernel_overrides={}, params=spec.params.model_dump(mode="json"), control=spec.control,
                      verdict="skipped", reason="tensor_parallel_size > 1 is not implemented yet")


def cases(loaded: LoadedSuite, failing: str | None, label: str) -> list[CaseResult]:
    made = []
    for spec in expand(loaded, loaded.suite.models[0]):
        drift = 0.0 if spec.mode == "invariant" and spec.check != failing else 1e-6 * (1 + len(made))
        drift = 0.0 if spec.mode == "default" and not CHECKS[spec.check].control else drift
        made.append(skipped(spec) if spec.tp > 1 else case(spec, drift, label))
    return made


def throughput_runs(invariant_seconds: float, settings: tuple[TimedSetting, ...] = ()) -> list[ThroughputRun]:
    """The headline pair at TP 1, then `settings`; two repeats, each in the other order."""
    measured = [("default", 1, {}, 1.0), ("invariant", 1, {}, invariant_seconds), *settings]
    return [ThroughputRun(mode=mode, tp=tp, kernel_overrides=overrides, repeat=repeat, tokens=64,
                          seconds=seconds * (1 + repeat / 10))
            for repeat in range(2) for mode, tp, overrides, seconds in (measured[::-1] if repeat else measured)]


def environment(hardware: str) -> Environment:
    return Environment(device="cpu", devices=["cpu"], cpu_model="Test Chip", cpu_isa=["avx2", "fma"],
                       cpu_capability="AVX2", torch_threads=2, cpu_kernels="avx2",
                       torch_cpu_config=["BLAS_INFO=mkl"],
                       hardware=hardware, python="3.11.7",
                       torch="2.13.0+cpu", cuda=None, nvidia_driver=None, triton=None, transformers="5.0.0",
                       bi_bench="0.1.0", git_commit="0123456789abcdef" * 2 + "01234567", git_dirty=False)


def make_results(model_id: str, *, synthetic: bool = False, hardware: str = "cpu-test-chip",
                 failing: str | None = None, skip_tp2: bool = False, run_id: str = "suite-20260101T000000Z",
                 finished_at: str = "2026-01-01T00:10:00+00:00", params_count: int = 135_000_000,
                 invariant_seconds: float = 2.0, settings: tuple[TimedSetting, ...] = (),
                 label: str = "batch=12 pos=5") -> ResultsFile:
    """`skip_tp2`: the suite also lists TP 2, whose cases were all skipped; `label`: the drifting candidate's."""
    loaded = suite(model_id, [1, 2] if skip_tp2 else [1])
    made = cases(loaded, failing, label)
    runs = throughput_runs(invariant_seconds, settings)
    return ResultsFile(
        run_id=run_id, command=["/x/.venv/bin/bi-bench", "run", SUITE_PATH], started_at=finished_at,
        finished_at=finished_at,
        suite=SuiteRecord(name="test", path=SUITE_PATH, sha256=loaded.sha256, source=loaded.text,
                          config=loaded.resolved(), shard=None, quick=False),
        model=ModelRecord(id=model_id, dtype="bfloat16", revision=None, weights_sha256=None if synthetic else "cd" * 32,
                          architecture="LlamaForCausalLM", params_count=params_count, synthetic_weights=synthetic,
                          lm_head_fp32=False),
        environment=environment(hardware),
        cases=made, throughput=from_runs(4, 16, runs), summary=summarize(made, synthetic, complete=True))


def write(results: ResultsFile, root: Path) -> Path:
    """Where `bi-bench run` puts it: root/<model>-<dtype>/<hardware>/<run id>.json."""
    folder = root / slug(f"{results.model.id}-{results.model.dtype}") / slug(results.environment.hardware)
    path = folder / f"{results.run_id}.json"
    save(path, results)
    return path


def without_case(results: ResultsFile, case_id: str) -> ResultsFile:
    """A forgery: one case deleted, the summary recomputed to match, so every figure still agrees."""
    kept = [c for c in results.cases if c.id != case_id]
    return results.model_copy(update={"cases": kept, "summary": summarize(kept, results.model.synthetic_weights,
                                                                          complete=True)})


def write_reproduction(results_path: Path, hardware: str, *, digests_from: ResultsFile | None = None) -> Path:
    """A reproduction of the file at `results_path` on `hardware`, every digest the recorded one (or, with
    `digests_from`, those of another file's same cases)."""
    results = ResultsFile.model_validate_json(results_path.read_text())
    source = {c.index: c.digests for c in (digests_from or results).cases}
    cases = [ReproducedCase(index=c.index, id=c.id, digests=source[c.index],
                            **dict(zip(("outcome", "reason"), outcome(c, source[c.index]))))
             for c in results.cases if reproducible(c)]
    reproduction = ReproductionFile(
        run_id=results.run_id, results_file=results_path.name, results_sha256=sha256(results_path.read_bytes()),
        command=["bi-bench", "reproduce", results_path.name], selection="every invariant-mode case",
        started_at=results.finished_at, finished_at=results.finished_at, environment=environment(hardware),
        cases=cases, reproduced=all(c.outcome == "reproduced" for c in cases))
    path = reproduction_path(results_path, hardware)
    write_atomic(path, reproduction.model_dump(mode="python"))
    return path


PAYLOAD = "<img src=x onerror=window.__pwned=1>"
SCRIPT_PAYLOAD = "</script><script>window.__pwned=2</script><!--<b>plotly markup</b>"


def hostile(model_id: str, **kwargs) -> ResultsFile:
    """HTML and script-breaking text in the model id, the hardware and a candidate label: text a valid file may
    carry (a check name may not: validate rejects an unknown check)."""
    return make_results(model_id, hardware=SCRIPT_PAYLOAD, label=SCRIPT_PAYLOAD, **kwargs)


VALIDATED = ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen3-0.6B", PAYLOAD)
FORGED = "forged/Claims-Everything-7B"
FORGED_CASE = "order/invariant/tp1"


def write_leaderboard(root: Path) -> Path:
    """Three validated models (one of them twice, on two machines), one that failed, one synthetic, and a forgery
    whose summary agrees with its cases but which lacks one case of its suite."""
    made = [
        make_results(VALIDATED[0], params_count=135_000_000, invariant_seconds=1.5),
        make_results(VALIDATED[0], hardware="cuda-nvidia-h100", run_id="suite-20260102T000000Z",
                     finished_at="2026-01-02T00:00:00+00:00", invariant_seconds=1.2, settings=SETTINGS),
        make_results(VALIDATED[1], params_count=600_000_000, invariant_seconds=1.8),
        hostile(PAYLOAD, params_count=7_000_000_000, invariant_seconds=2.5),
        make_results("meta-llama/Llama-3.2-1B", params_count=1_230_000_000, failing="order"),
        make_results("random:qwen3-8b", synthetic=True, skip_tp2=True),
        without_case(make_results(FORGED, params_count=7_000_000_000), FORGED_CASE),
    ]
    for results in made:
        write(results, root)
    return root
