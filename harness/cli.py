"""The `bi-bench` command line."""
from __future__ import annotations

import time

import click
from rich.console import Console
from rich.table import Table

from bi_bench.engine import LLM, SamplingParams
from bi_bench.harness.errors import one_line_errors

DEMO_PROMPTS = (
    "The capital of France is",
    "Write a haiku about the sea:",
    "def fibonacci(n):",
    "Three reasons to learn Rust are",
)


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
@one_line_errors
def demo() -> None:
    """The embedded demo: smollm2-135m, invariant mode, each prompt alone and all together."""
    llm = LLM("smollm2-135m", dtype="float32", mode="invariant", max_num_seqs=8)
    params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=24, seed=1234)
    prompts = list(DEMO_PROMPTS)
    _print_outputs(llm, prompts, params)
    together = llm.generate(prompts, params)
    alone = [llm.generate([p], params)[0] for p in prompts]
    same = all(a.token_ids == t.token_ids and a.logprobs == t.logprobs for a, t in zip(alone, together))
    click.echo(f"invariant mode: each prompt alone == in a batch of {len(prompts)}, bitwise: {same}")
