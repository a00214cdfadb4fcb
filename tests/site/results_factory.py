"""Results files for the site tests, built from the harness's own metric, verdict and summary code, so each
one also passes `bi-bench validate` (the tiny suite takes half a minute; these take milliseconds)."""
from __future__ import annotations

from pathlib import Path

from bi_bench.harness.checks import CHECKS
from bi_bench.harness.metrics import case_metrics, verdict
from bi_bench.harness.observations import Candidate, Group, Observation, group_digests
from bi_bench.harness.results import (CaseResult, Environment, ModelRecord, ResultsFile, SuiteRecord, ThroughputRun,
                                      save, slug)
from bi_bench.harness.summary import summarize
from bi_bench.harness.throughput import from_runs

CHECK_NAMES = ("batch_size", "order", "prefix_cache", "repeat", "unique_completions")
TOKENS = 6
INVARIANT_KERNELS = {"matmul": "cpu_min_rows", "rmsnorm": "cpu_halving"}
DEFAULT_KERNELS = {"matmul": "torch", "rmsnorm": "torch"}
TimedSetting = tuple[str, int, dict[str, str], float]  # mode, TP degree, kernel overrides, seconds per 64 tokens
SETTINGS: tuple[TimedSetting, ...] = (  # beyond the TP 1 headline: several kernel variants and TP degrees
    ("default", 2, {}, 0.6), ("invariant", 2, {}, 1.5), ("default", 1, {"matmul": "split_k"}, 1.25),
    ("invariant", 1, {"matmul": "cpu_min_rows"}, 2.5))


def observation(shift: float, from_position: int) -> Observation:
    logprobs = [-1.0 - i / 8 + (shift * (i + 1) if i >= from_position else 0.0) for i in range(TOKENS)]
    return Observation(token_ids=list(range(10, 10 + TOKENS)), logprobs=logprobs)


def group(drift: float, seed: int) -> Group:
    """A needle and two candidates; with drift > 0 the second candidate leaves the reference at token `seed`."""
    return Group(prompt_token_ids=[1, 2, 3], reference=observation(0.0, 0),
                 candidates=[Candidate(label="batch=1 pos=0", observation=observation(0.0, 0)),
                             Candidate(label="batch=12 pos=5", observation=observation(drift, seed % TOKENS))])


def case(index: int, check: str, mode: str, drift: float, tp: int = 1) -> CaseResult:
    groups = [group(drift, index)]
    metrics = case_metrics(groups)
    return CaseResult(index=index, id=f"{check}/{mode}/tp{tp}", check=check, mode=mode, tp=tp,
                      kernels=DEFAULT_KERNELS if mode == "default" else INVARIANT_KERNELS, kernel_overrides={},
                      params={"control": None}, control=CHECKS[check].control,
                      verdict=verdict(metrics, CHECKS[check].claims(mode)), metrics=metrics, observations=groups,
                      digests=[group_digests(g) for g in groups])


def skipped(index: int, check: str, mode: str, tp: int) -> CaseResult:
    return CaseResult(index=index, id=f"{check}/{mode}/tp{tp}", check=check, mode=mode, tp=tp, kernels={},
                      kernel_overrides={}, params={"control": None}, control=CHECKS[check].control,
                      verdict="skipped", reason="tensor_parallel_size > 1 is not implemented yet")


def cases(failing: str | None, skip_tp2: bool) -> list[CaseResult]:
    made = []
    for mode in ("invariant", "default"):
        for check in CHECK_NAMES:
            drift = 0.0 if mode == "invariant" and check != failing else 1e-6 * (1 + len(made))
            drift = 0.0 if mode == "default" and not CHECKS[check].control else drift
            made.append(case(len(made), check, mode, drift))
    if skip_tp2:
        made.append(skipped(len(made), "batch_size", "invariant", 2))
    return made


def throughput_runs(invariant_seconds: float, settings: tuple[TimedSetting, ...] = ()) -> list[ThroughputRun]:
    """The headline pair at TP 1, then `settings`; two repeats, each in the other order."""
    measured = [("default", 1, {}, 1.0), ("invariant", 1, {}, invariant_seconds), *settings]
    return [ThroughputRun(mode=mode, tp=tp, kernel_overrides=overrides, repeat=repeat, tokens=64,
                          seconds=seconds * (1 + repeat / 10))
            for repeat in range(2) for mode, tp, overrides, seconds in (measured[::-1] if repeat else measured)]


def make_results(model_id: str, *, synthetic: bool = False, hardware: str = "cpu-test-chip",
                 failing: str | None = None, skip_tp2: bool = False, run_id: str = "suite-20260101T000000Z",
                 finished_at: str = "2026-01-01T00:10:00+00:00", params_count: int = 135_000_000,
                 invariant_seconds: float = 2.0, settings: tuple[TimedSetting, ...] = ()) -> ResultsFile:
    made = cases(failing, skip_tp2)
    runs = throughput_runs(invariant_seconds, settings)
    return ResultsFile(
        run_id=run_id, command=["/x/.venv/bin/bi-bench", "run", "suites/test.yaml"], started_at=finished_at,
        finished_at=finished_at,
        suite=SuiteRecord(name="test", path="suites/test.yaml", sha256="ab" * 32, config={}, shard=None, quick=False),
        model=ModelRecord(id=model_id, dtype="bfloat16", revision=None, weights_sha256=None if synthetic else "cd" * 32,
                          architecture="LlamaForCausalLM", params_count=params_count, synthetic_weights=synthetic,
                          lm_head_fp32=False),
        environment=Environment(device="cpu", devices=["cpu"], cpu_model="Test Chip", hardware=hardware,
                                python="3.11.7", torch="2.13.0+cpu", cuda=None, nvidia_driver=None, triton=None,
                                transformers="5.0.0", bi_bench="0.1.0", git_commit="0123456789abcdef" * 2 + "01234567",
                                git_dirty=False),
        cases=made, throughput=from_runs(4, 16, runs), summary=summarize(made, synthetic, complete=True))


def write(results: ResultsFile, root: Path) -> Path:
    """Where `bi-bench run` puts it: root/<model>-<dtype>/<hardware>/<run id>.json."""
    folder = root / slug(f"{results.model.id}-{results.model.dtype}") / results.environment.hardware
    path = folder / f"{results.run_id}.json"
    save(path, results)
    return path


PAYLOAD = "<img src=x onerror=window.__pwned=1>"
SCRIPT_PAYLOAD = "</script><script>window.__pwned=2</script><!--<b>plotly markup</b>"


def hostile(results: ResultsFile) -> ResultsFile:
    """HTML and script-breaking text in the model id, a check name and a candidate label."""
    first = results.cases[0]
    group = first.observations[0]
    candidates = [c.model_copy(update={"label": SCRIPT_PAYLOAD}) for c in group.candidates]
    case = first.model_copy(update={"check": SCRIPT_PAYLOAD,
                                    "observations": [group.model_copy(update={"candidates": candidates})]})
    return results.model_copy(update={"model": results.model.model_copy(update={"id": PAYLOAD}),
                                      "cases": [case, *results.cases[1:]]})


VALIDATED = ("HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen3-0.6B", PAYLOAD)


def write_leaderboard(root: Path) -> Path:
    """Three validated models (one of them twice, on two machines), one that failed, one synthetic."""
    made = [
        make_results(VALIDATED[0], params_count=135_000_000, invariant_seconds=1.5),
        make_results(VALIDATED[0], hardware="cuda-nvidia-h100", run_id="suite-20260102T000000Z",
                     finished_at="2026-01-02T00:00:00+00:00", invariant_seconds=1.2, settings=SETTINGS),
        make_results(VALIDATED[1], params_count=600_000_000, invariant_seconds=1.8),
        hostile(make_results("placeholder", params_count=7_000_000_000, invariant_seconds=2.5)),
        make_results("meta-llama/Llama-3.2-1B", params_count=1_230_000_000, failing="order"),
        make_results("random:qwen3-8b", synthetic=True, skip_tp2=True),
    ]
    for results in made:
        write(results, root)
    return root
