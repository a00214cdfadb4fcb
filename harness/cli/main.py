"""The `bi-bench` command line."""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from bi_bench.engine import LLM, SamplingParams
from bi_bench.harness.backends.vllm_server import PYTHON_VARIABLE
from bi_bench.harness.cli.errors import fail, one_line_errors
from bi_bench.harness.cli.listing import backends_table, checks_table, kernels_table, models_table
from bi_bench.harness.cli.report import ProgressReporter, print_changes, print_summary, wide_console
from bi_bench.harness.cli.site import site
from bi_bench.harness.packaged import suite_file
from bi_bench.harness.results.file import save, write_atomic
from bi_bench.harness.results.file import load_results
from bi_bench.harness.results.reproduction import ReproductionFile, reproduction_path
from bi_bench.harness.run.runner import RunOptions, run_suite
from bi_bench.harness.suite.load import LoadedSuite, load_suite
from bi_bench.harness.suite.matrix import expand
from bi_bench.harness.suite.matrix import Shard
from bi_bench.harness.suite.prompts import ENGLISH
from bi_bench.harness.verify.merge import merge as merge_shards
from bi_bench.harness.verify.reproduce import Selection
from bi_bench.harness.verify.reproduce import plan as plan_reproduction
from bi_bench.harness.verify.reproduce import reproduce as run_reproduction
from bi_bench.harness.verify.validate import problems_of, validate_file
from bi_bench.kernels.registry import DEVICES

DEMO_SUITE = "smollm2-cpu.yaml"
CHECK_FAILED = 1
INTERRUPTED = 130

DEMO_PROMPTS = ENGLISH[:4]


@click.group()
@click.version_option(package_name="bi-bench")
def main() -> None:
    """bi-bench: does this model, on this engine and these kernels, give bit-identical results?"""


@main.command()
@click.argument("prompts", nargs=-1)
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--dtype", default="bfloat16", show_default=True)
@click.option("--mode", default="default", show_default=True)
@click.option("--max-tokens", default=32, show_default=True)
@click.option("--temperature", default=0.0, show_default=True)
@click.option("--seed", default=1234, show_default=True)
@click.option("--tp", "tensor_parallel_size", default=1, show_default=True)
@one_line_errors
def generate(prompts: tuple[str, ...], model: str, dtype: str, mode: str, max_tokens: int, temperature: float,
             seed: int, tensor_parallel_size: int) -> None:
    """Generate completions for PROMPTS and print them with their logprobs."""
    llm = LLM(model, dtype=dtype, mode=mode, tensor_parallel_size=tensor_parallel_size)
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    _print_outputs(llm, list(prompts or DEMO_PROMPTS), params)


def _print_outputs(llm: LLM, prompts: list[str], params: SamplingParams) -> None:
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    table = Table(title=f"kernels: {llm.kernels}")
    for column in ("prompt", "completion", "tokens", "mean logprob"):
        table.add_column(column)
    for prompt, out in zip(prompts, outputs):
        mean = sum(out.logprobs) / len(out.logprobs)
        table.add_row(prompt, out.text.strip(), str(len(out.token_ids)), f"{mean:.3f}")
    console = Console()
    console.print(table)
    tokens = sum(len(o.token_ids) for o in outputs)
    console.print(f"{tokens} tokens in {elapsed:.1f} s ({tokens / elapsed:.1f} tok/s)")


@main.command()
@click.option("--out", default=Path("results"), type=click.Path(path_type=Path), show_default=True)
@click.option("--quick", is_flag=True, help="one needle, one trial per setting, 4 tokens")
@one_line_errors
def demo(out: Path, quick: bool) -> None:
    """The embedded demo: suites/smollm2-cpu.yaml (smollm2-135m on this CPU, invariant vs default mode)."""
    _run(load_suite(suite_file(DEMO_SUITE), None, quick), RunOptions(out=out, command=list(sys.argv)))


@main.command()
@click.argument("suite", type=click.Path(path_type=Path))
@click.option("--out", default=Path("results"), type=click.Path(path_type=Path), show_default=True,
              help="results go to OUT/<model>/<hardware>/<run-id>.json")
@click.option("--resume", is_flag=True, help="continue the latest interrupted run of this suite from its journal")
@click.option("--shard", default=None, metavar="I/N", help="run every N-th case, starting at the I-th (1-based)")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="override the suite's device")
@click.option("--quick", is_flag=True, help="one needle, one trial per setting, 4 tokens, one throughput repeat")
@click.option("--dry-run", is_flag=True, help="list the cases and exit")
@click.option("--base-url", default=None, metavar="URL", help="point the suite's openai models at the server at URL")
@click.option("--vllm-python", default=None, type=click.Path(path_type=Path),
              help="the Python whose vLLM the vllm backend starts (default: .venv-vllm, built by make vllm)")
@one_line_errors
def run(suite: Path, out: Path, resume: bool, shard: str | None, device: str | None, quick: bool,
        dry_run: bool, base_url: str | None, vllm_python: Path | None) -> None:
    """Run SUITE: exit 0 when every invariance claim held and every control diverged, 1 when a check failed."""
    if vllm_python is not None:
        os.environ[PYTHON_VARIABLE] = str(vllm_python)
    options = RunOptions(out=out, command=list(sys.argv), shard=parse_shard(shard), resume=resume)
    loaded = load_suite(suite, device, quick)
    loaded = loaded.with_base_url(base_url) if base_url else loaded
    if dry_run:
        _list_cases(loaded, options)
    else:
        _run(loaded, options)


def _run(loaded: LoadedSuite, options: RunOptions) -> None:
    console = wide_console()
    try:
        with ProgressReporter(Console(stderr=True)) as reporter:
            done = run_suite(loaded, options, reporter)
    except KeyboardInterrupt:
        click.echo("interrupted: finished cases are in the journal; run again with --resume to continue", err=True)
        sys.exit(INTERRUPTED)
    for path, results in done:
        print_summary(console, path, results)
    sys.exit(0 if all(results.summary.ok for _, results in done) else CHECK_FAILED)


def _list_cases(loaded: LoadedSuite, options: RunOptions) -> None:
    for model in loaded.suite.models:
        cases = expand(loaded, model)
        if options.shard:
            cases = options.shard.cases(cases)
        for case in cases:
            click.echo(f"{model.id}\t{model.dtype}\t{case.id}")


def parse_shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    match = re.fullmatch(r"([0-9]{1,6})/([0-9]{1,6})", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/2")
    return Shard.parse(text)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@one_line_errors
def validate(files: tuple[Path, ...]) -> None:
    """Check results FILES (and reproductions): schema, the case matrix re-expanded from the suite each carries,
    observation lengths and prompts, then every digest, metric, verdict and summary figure recomputed."""
    failed = False
    for path in files:
        problems = validate_file(path)
        for problem in problems:
            click.echo(f"{path}: {problem}")
        if not problems:
            click.echo(f"{path}: valid")
        failed = failed or bool(problems)
    sys.exit(CHECK_FAILED if failed else 0)


@main.command()
@click.argument("results_file", metavar="RESULTS.json", type=click.Path(path_type=Path))
@click.option("--cases", "pattern", default=None, metavar="PATTERN",
              help="only the cases whose id matches this glob, e.g. 'batch_size/*'")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="N of those cases, drawn at random")
@one_line_errors
def reproduce(results_file: Path, pattern: str | None, sample: int | None) -> None:
    """Run RESULTS.json's invariant-mode cases again here and compare every digest: exit 0 when all reproduce, 1
    naming the first that does not, 2 when they cannot run here. Writes <run-id>.reproduced-<hardware>.json beside it."""
    results = load_results(results_file)
    problems = problems_of(results)
    if problems:
        click.echo(f"{results_file}: does not validate, so nothing to reproduce: {problems[0]}")
        sys.exit(CHECK_FAILED)
    planned = plan_reproduction(results_file, results, Selection(pattern, sample))
    for line in planned.package_differences:
        click.echo(f"{results_file}: {line} (reproducing all the same)")
    try:
        with ProgressReporter(Console(stderr=True)) as reporter:
            done = run_reproduction(planned, list(sys.argv), reporter)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing written", err=True)
        sys.exit(INTERRUPTED)
    target = reproduction_path(results_file, done.environment.hardware)
    write_atomic(target, done.model_dump(mode="python"))
    for case in done.cases:
        click.echo(f"{case.outcome:<10} {case.id}" + (f": {case.reason}" if case.reason else ""))
    click.echo(f"wrote {target}")
    _exit_with_outcome(results_file, done)


def _exit_with_outcome(results_file: Path, done: ReproductionFile) -> None:
    """1 for the first case that gave other bits; 2 for one that could not run here; else 0."""
    hardware = done.environment.hardware
    failed = next((case for case in done.cases if case.outcome == "differs"), None)
    if failed:
        click.echo(f"{results_file}: {failed.id} does not reproduce on {hardware}: {failed.reason}")
        sys.exit(CHECK_FAILED)
    skipped = next((case for case in done.cases if case.outcome == "skipped"), None)
    if skipped:
        fail(f"{results_file}: {skipped.id} cannot run here: {skipped.reason}")
    click.echo(f"{results_file}: all {len(done.cases)} cases reproduced on {hardware}")


@main.command("ls")
@click.argument("what", type=click.Choice(["models", "kernels", "checks", "backends"]))
@one_line_errors
def list_command(what: str) -> None:
    """List the models, kernel variants, checks or backends (engines under test) and their capabilities."""
    tables = {"models": models_table, "kernels": kernels_table, "checks": checks_table, "backends": backends_table}
    wide_console().print(tables[what]())


@main.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@one_line_errors
def compare(a: Path, b: Path) -> None:
    """What changed from results file A to results file B."""
    print_changes(wide_console(), load_results(a), load_results(b))


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="the merged results file")
@one_line_errors
def merge(files: tuple[Path, ...], output: Path) -> None:
    """Merge the shards of one run (bi-bench run --shard I/N) into one results file."""
    merged = merge_shards(list(files), list(sys.argv))
    save(output, merged)
    print_summary(wide_console(), output, merged)


main.add_command(site)

if __name__ == "__main__":
    main()
