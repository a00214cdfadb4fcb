"""One command for a bare GPU machine, offline, in at most 7 minutes: the environment, the `gpu`-marked tests, the
needle battery at Qwen3-1.7B shapes, throughput (invariant vs default, eager vs CUDA graphs) and the
synthetic-gpu suite, each step under its own time limit, everything in one folder of at most 8 files.

    python benchmarks/gpu_check.py --out gpu-check    # the run: one summary table at the end
    python benchmarks/gpu_check.py --dry-run          # lists the steps

A failing or timed-out step is reported and the rest still run. Packages the GPU machine lacks come as wheels
from `make gpu-wheels` (.whl/) and are installed from there, offline, when an import fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WHEELS = REPO / ".whl"
MISSING_ON_GPU_MACHINE = ("pydantic", "platformdirs", "gguf", "plotly")  # import names, also the pip names
MODEL = "random:qwen3-1.7b"
BATCHES = (1, 16, 64)
PROMPT_LEN, NEW_TOKENS = 128, 256
TOTAL_LIMIT_S = 420
MIN_STEP_S = 15  # a step with less time left than this is skipped
DETAIL = ">> "  # a worker's summary lines start with this


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    limit_s: int
    commands: tuple[tuple[str, ...], ...]  # run side by side


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # ok, failed, timed out, skipped
    seconds: float
    detail: str


def worker(name: str, *args: str) -> tuple[str, ...]:
    return (sys.executable, str(Path(__file__).resolve()), "--worker", name, *args)


def steps(out: Path, suite_out: Path) -> list[Step]:
    python = sys.executable
    return [
        Step("prepare", "install missing wheels from .whl/ and bi-bench itself, offline, if imports fail", 60,
             (worker("prepare"),)),
        Step("environment", "GPU, driver, CUDA, torch, triton -> environment.json", 30,
             (worker("environment", str(out)),)),
        Step("gpu-tests", "pytest -m gpu -> gpu-tests.xml", 100,
             ((python, "-m", "pytest", "-m", "gpu", "-p", "no:xdist", "-q", "--continue-on-collection-errors",
               f"--junitxml={out / 'gpu-tests.xml'}", "tests/kernels", "tests/engine"),)),
        Step("needles", f"needle battery, {MODEL}, TP 1, invariant and default side by side -> needles.json", 150,
             tuple(worker("needle", str(out), mode) for mode in ("invariant", "default"))),
        Step("throughput", f"{MODEL}: invariant vs default x eager vs graphs at batch "
                           f"{', '.join(map(str, BATCHES))} ({PROMPT_LEN}-token prompts, {NEW_TOKENS} new tokens) "
                           "-> throughput.json", 150, (worker("throughput", str(out)),)),
        Step("suite", "bi-bench run suites/synthetic-gpu.yaml --quick -> suite-*.json", TOTAL_LIMIT_S,
             ((python, "-c", "from bi_bench.harness.cli.main import main; main()", "run", "suites/synthetic-gpu.yaml",
               "--quick", "--out", str(suite_out)),)),
    ]


def run_step(step: Step, limit_s: float, log: Path) -> tuple[str, float, list[str]]:
    """Runs the step's commands side by side under one time limit: status, seconds, their output lines."""
    start = time.monotonic()
    logs = [log.with_name(f"{log.name}.{i}") for i in range(len(step.commands))]
    procs = []
    for command, path in zip(step.commands, logs):
        with path.open("w") as output:
            procs.append(subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                                          start_new_session=True))
    timed_out = False
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, start + limit_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group: the command and its children
            proc.wait()
    lines = []
    with log.open("a") as combined:
        for command, path in zip(step.commands, logs):
            text = path.read_text(errors="replace")
            combined.write(f"\n===== {step.name}: {' '.join(command)}\n{text}")
            lines += text.splitlines()
            path.unlink()
    status = "timed out" if timed_out else "ok" if all(p.returncode == 0 for p in procs) else "failed"
    return status, time.monotonic() - start, lines


def detail_of(lines: list[str]) -> str:
    marked = [line.removeprefix(DETAIL) for line in lines if line.startswith(DETAIL)]
    return "\n".join(marked) if marked else next((line.strip() for line in reversed(lines) if line.strip()), "")


def collect_suite_results(suite_out: Path, out: Path) -> list[str]:
    """The suite's results files (or, when it finished none, its journal) flattened into `out`."""
    found = sorted(suite_out.rglob("*.json")) or sorted(suite_out.rglob("*.journal"))
    for path in found:
        shutil.copy(path, out / f"suite-{path.parent.parent.name}{path.suffix}")
    return [f"suite-{path.parent.parent.name}{path.suffix}" for path in found]


def throughput_detail(out: Path) -> str:
    """tok/s per mode and graph setting, from what throughput.json holds (all of it, or as far as it got)."""
    path = out / "throughput.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    lines = []
    for mode in ("invariant", "default"):
        for graphs in (False, True):
            rates = [f"{r['tok_per_s']:.0f}" for r in runs if r["mode"] == mode and r["cuda_graphs"] == graphs]
            if rates:
                lines.append(f"{mode}, {'graphs' if graphs else 'eager'}: {' / '.join(rates)}")
    return "\n".join([f"tok/s at batch {' / '.join(map(str, BATCHES))}", *lines]) if lines else ""


def merge_needles(out: Path) -> None:
    parts = sorted(out.glob("needles-*.json"))
    if parts:
        merged = {path.stem.removeprefix("needles-"): json.loads(path.read_text()) for path in parts}
        (out / "needles.json").write_text(json.dumps(merged, indent=2))
    for path in parts:
        path.unlink()


def run_all(out: Path) -> list[Outcome]:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    log.write_text("")
    suite_out = Path(tempfile.mkdtemp(prefix="bi-bench-suite-"))
    deadline = time.monotonic() + TOTAL_LIMIT_S
    outcomes = []
    for step in steps(out, suite_out):
        left = deadline - time.monotonic()
        if left < MIN_STEP_S:
            outcomes.append(Outcome(step.name, "skipped", 0.0, f"{left:.0f} s of {TOTAL_LIMIT_S} s left"))
            continue
        print(f"{step.name}: {step.what} (limit {min(step.limit_s, left):.0f} s)", flush=True)
        status, seconds, lines = run_step(step, min(step.limit_s, left), log)
        detail = detail_of(lines)
        if step.name == "needles":
            merge_needles(out)
        if step.name == "throughput":
            detail = throughput_detail(out) or detail
        if step.name == "suite":
            files = collect_suite_results(suite_out, out)
            detail = f"{', '.join(files) or 'no results file'}; {detail}"
        outcomes.append(Outcome(step.name, status, seconds, detail))
    shutil.rmtree(suite_out, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
    return outcomes


def print_summary(outcomes: list[Outcome], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    style = {"ok": "green", "failed": "bold red", "timed out": "bold yellow", "skipped": "dim"}
    table = Table(title=f"gpu_check: {out}")
    for column in ("step", "status", "seconds", "result"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(o.name, f"[{style[o.status]}]{o.status}[/]", f"{o.seconds:.0f}", o.detail)
    Console(width=160).print(table)


# ---------------------------------------------------------------- workers (each its own process)

def prepare() -> None:
    import importlib.util

    missing = [name for name in MISSING_ON_GPU_MACHINE if importlib.util.find_spec(name) is None]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index"]
    if missing:
        subprocess.run([*pip, "--find-links", str(WHEELS), *missing], check=True)
    if importlib.util.find_spec("bi_bench") is None:
        subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO)], check=True)
    print(f"{DETAIL}installed {', '.join(missing) or 'no wheels'}; bi-bench importable")


def environment(out: Path) -> None:
    from bi_bench.harness.run.environment import environment as describe

    env = describe("cuda").model_dump(mode="json")
    (out / "environment.json").write_text(json.dumps(env, indent=2))
    print(f"{DETAIL}{', '.join(env['devices'][1:]) or 'no GPU'}; driver {env['nvidia_driver']}, CUDA {env['cuda']}, "
          f"torch {env['torch']}, triton {env['triton']}")


def needle(out: Path, mode: str) -> None:
    sys.path.insert(0, str(REPO / "tests" / "engine"))
    from needle import run_battery

    seen = run_battery(MODEL, "bfloat16", mode, batch_sizes=(3, 16, 64), max_len=40, needle_len=(40, 56),
                       preempt_blocks=6, device="cuda")
    differing = [name for name, obs in seen.items() if obs != seen["alone"]]
    ok = not differing if mode == "invariant" else bool(differing)  # default mode is the negative control
    (out / f"needles-{mode}.json").write_text(json.dumps({"settings": list(seen), "differing": differing,
                                                          "ok": ok}, indent=2))
    verdict = "every setting equal" if not differing else f"changed under {', '.join(differing)}"
    print(f"{DETAIL}{mode}: {verdict} ({len(seen)} settings)")
    sys.exit(0 if ok else 1)


def throughput(out: Path) -> None:
    import gc

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import make_prompts, time_generate

    from bi_bench.engine import LLM, SamplingParams

    runs = []
    for mode in ("invariant", "default"):
        for graphs in (False, True):
            llm = LLM(MODEL, dtype="bfloat16", device="cuda", mode=mode, enforce_eager=not graphs,
                      max_num_seqs=max(BATCHES), max_model_len=PROMPT_LEN + NEW_TOKENS)
            for batch in BATCHES:
                prompts = make_prompts(llm.source.config.vocab_size, batch, PROMPT_LEN, seed=batch)
                llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=2))  # this batch's kernel shapes
                llm.reset_prefix_cache()  # the timed run prefills in full
                runs.append({"mode": mode, "cuda_graphs": graphs, "batch": batch,
                             **time_generate(llm, prompts, NEW_TOKENS)})
                (out / "throughput.json").write_text(json.dumps({"model": MODEL, "runs": runs}, indent=2))
            llm.close()
            del llm
            gc.collect()
            torch.cuda.empty_cache()


WORKERS = {"prepare": prepare, "environment": environment, "needle": needle, "throughput": throughput}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "gpu-check", help="the folder everything goes to")
    parser.add_argument("--dry-run", action="store_true", help="list the steps and exit")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, *rest = args.worker
        WORKERS[name](*([Path(rest[0]), *rest[1:]] if rest else []))
        return 0
    if args.dry_run:
        for step in steps(args.out, Path("<temporary folder>")):
            limit = "the rest" if step.limit_s >= TOTAL_LIMIT_S else f"{step.limit_s} s"
            print(f"{step.name:<12} {limit:>8}  {step.what}")
        print(f"all steps together: at most {TOTAL_LIMIT_S} s; files in {args.out}")
        return 0
    outcomes = run_all(args.out.resolve())
    print_summary(outcomes, args.out)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
