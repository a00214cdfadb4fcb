"""Where one batch-size-1 decode step goes, per op, for each dtype and mode.

    python benchmarks/profile_decode.py --dtypes float32,bfloat16 --modes default,invariant --threads 2 \
        --out benchmarks/results/profile_decode.json

One engine per dtype x mode, one request: a prefill of --prompt-len tokens, --warm-up decode steps, then --steps
decode steps timed bare (the step time and tok/s, the layers fused where the engine fuses them) and --steps more
op by op with a wall-clock timer around each op. Each
op's time excludes the ops timed inside it, so a step's rows add up to the step; "glue" is the Python around the
ops (module calls, views, reshapes, dispatch). Every figure is a median over the steps (a shared machine now and
then keeps a step waiting for a core), so the rows add up to about the median step. Beside it: the
memory-bandwidth bound of a step that reads every weight once (torch's sum over 2 GB at this thread count).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from throughput import make_prompts, read_bandwidth

from bi_bench.engine import LLM, EngineConfig, SamplingParams
from bi_bench.engine.layers.attention import PagedAttention
from bi_bench.engine.layers.embed_head import VocabParallelEmbedding
from bi_bench.engine.layers.layernorm import RMSNorm
from bi_bench.engine import resolve
from bi_bench.engine.models import llama
from bi_bench.kernels.cpu.isa import cpu_flags, isa_features

LINEARS = {"q_proj": "linear qkv", "k_proj": "linear qkv", "v_proj": "linear qkv", "o_proj": "linear o",
           "gate_proj": "linear gate/up", "up_proj": "linear gate/up", "down_proj": "linear down",
           "lm_head": "linear lm_head"}
GLUE = "layer glue (Python, dispatch)"
ROWS = ("linear qkv", "linear o", "linear gate/up", "linear down", "linear lm_head", "attention kernel",
        "KV cache write", "rmsnorm", "rotary (tables + apply)", "activation (silu * up)", "embedding",
        "log_softmax", "sampler (rest)", GLUE, "engine (schedule, inputs, logits copy)")


class ExclusiveTimer:
    """Wall seconds per category, each exclusive of the timed calls nested in it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._children: list[float] = []

    def take(self) -> dict[str, float]:
        """The seconds timed since the last take."""
        taken, self.seconds = self.seconds, defaultdict(float)
        return taken

    def wrap(self, category: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            self._children.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[category] += elapsed - self._children.pop()
                if self._children:
                    self._children[-1] += elapsed
        return timed

    def wrap_variant(self, owner: object, attribute: str, category: str) -> None:
        """Times the kernel variant held in `owner.<attribute>` (its fused form too: q, k and v in one call are
        timed as q_proj's, gate and up as gate_proj's)."""
        variant = getattr(owner, attribute)
        fused = variant.fused and self.wrap(category, variant.fused)
        setattr(owner, attribute, replace(variant, fn=self.wrap(category, variant.fn), fused=fused))


def instrument(llm: LLM, timer: ExclusiveTimer) -> None:
    """Puts a timer around every op of this engine's model, its sampler and its step."""
    engine, runner = llm.engine, llm.engine.runner
    engine._step = timer.wrap("engine (schedule, inputs, logits copy)", engine._step)
    timer.wrap_variant(runner.sampler, "log_softmax", "log_softmax")
    runner.sampler = timer.wrap("sampler (rest)", runner.sampler)
    for name, module in runner.model.named_modules():
        if isinstance(module, llama.LlamaModel):
            module.fused = False  # op by op, so each op can be timed (the bare steps ran as the engine runs)
        _instrument_module(name.rsplit(".", 1)[-1], module, timer)


def _instrument_module(leaf: str, module: torch.nn.Module, timer: ExclusiveTimer) -> None:
    if leaf in LINEARS:
        timer.wrap_variant(module, "matmul", LINEARS[leaf])
        module.forward = timer.wrap(GLUE, module.forward)
    elif isinstance(module, PagedAttention):
        timer.wrap_variant(module, "attention", "attention kernel")
        module.forward = timer.wrap("KV cache write", module.forward)
    elif isinstance(module, RMSNorm):
        module.forward = timer.wrap("rmsnorm", module.forward)
    elif isinstance(module, VocabParallelEmbedding):
        module.forward = timer.wrap("embedding", module.forward)
    elif isinstance(module, llama.LlamaMLP):
        module.act_and_mul = timer.wrap("activation (silu * up)", module.act_and_mul)
        module.forward = timer.wrap(GLUE, module.forward)
    elif isinstance(module, (llama.LlamaAttention, llama.LlamaDecoderLayer, llama.LlamaModel)):
        module.forward = timer.wrap(GLUE, module.forward)
    if isinstance(module, llama.LlamaAttention):
        ops = module.pointwise.fn
        apply_rotary = timer.wrap("rotary (tables + apply)", ops.apply_rotary)
        module.pointwise = replace(module.pointwise, fn=replace(ops, apply_rotary=apply_rotary))
    if isinstance(module, llama.LlamaModel):
        module.rotary.cos_sin = timer.wrap("rotary (tables + apply)", module.rotary.cos_sin)


def step_seconds(llm: LLM, steps: int, after_step: Callable[[], object] = lambda: None) -> list[float]:
    """Wall seconds of each of `steps` engine steps (decode steps once the prompt is prefilled)."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        llm.engine.step()
        times.append(time.perf_counter() - start)
        after_step()
    return times


def prefill_steps(prompts: list[list[int]]) -> int:
    return math.ceil(sum(map(len, prompts)) / EngineConfig.default("max_num_batched_tokens"))


def profile(model: str, dtype: str, mode: str, prompts: list[list[int]], warm_up: int, steps: int) -> dict:
    new_tokens = prefill_steps(prompts) + warm_up + 2 * steps
    llm = LLM(model, dtype=dtype, mode=mode, max_num_seqs=len(prompts),
              max_model_len=len(prompts[0]) + new_tokens + 16)
    for prompt in prompts:
        llm.engine.add_request(prompt, SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True))
    # the prefills (chunks of the default 2048-token step budget), then warm-up decodes
    step_seconds(llm, prefill_steps(prompts) + warm_up)
    bare = step_seconds(llm, steps)
    timer = ExclusiveTimer()
    instrument(llm, timer)
    per_step: list[dict[str, float]] = []
    instrumented = step_seconds(llm, steps, lambda: per_step.append(timer.take()))
    # medians over steps: on a shared machine a step now and then waits for a core
    return {"dtype": dtype, "mode": mode, "kernels": llm.kernels, "parameters": llm.num_parameters,
            "layers": llm.source.config.num_hidden_layers, "step_ms": 1e3 * statistics.median(bare),
            "step_ms_min": 1e3 * min(bare), "instrumented_step_ms": 1e3 * statistics.median(instrumented),
            "ms": {row: 1e3 * statistics.median(s[row] for s in per_step) for row in ROWS}}


def bound_tok_per_s(run: dict, bandwidth: float) -> float:
    return bandwidth / (run["parameters"] * torch.empty(0, dtype=getattr(torch, run["dtype"])).element_size())


def table(runs: list[dict], bandwidth: float) -> str:
    """Markdown: ms per step and share of the instrumented step, one column per run."""
    head = "| per decode step | " + " | ".join(f"{r['dtype']} {r['mode']}" for r in runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    for row in ROWS:
        cells = [f"{r['ms'][row]:.2f} ms ({r['ms'][row] / r['instrumented_step_ms']:.0%})" for r in runs]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| glue per layer | " + " | ".join(f"{1e3 * r['ms'][GLUE] / r['layers']:.0f} us" for r in runs) + " |")
    lines.append("| instrumented step | " + " | ".join(f"{r['instrumented_step_ms']:.1f} ms" for r in runs) + " |")
    lines.append("| bare step, median (min) | "
                 + " | ".join(f"{r['step_ms']:.1f} ms ({r['step_ms_min']:.1f})" for r in runs) + " |")
    lines.append("| tok/s (bare) / bound | " + " | ".join(
        f"{1e3 / r['step_ms']:.1f} / {bound_tok_per_s(r, bandwidth):.0f}" for r in runs) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--modes", default="default,invariant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--requests", type=int, default=1, help="requests decoding together (the batch)")
    parser.add_argument("--warm-up", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed bare, and as many instrumented")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bandwidth = read_bandwidth()
    vocab = resolve(args.model).config.vocab_size
    prompts = make_prompts(vocab, args.requests, args.prompt_len, seed=0)
    runs = [profile(args.model, dtype, mode, prompts, args.warm_up, args.steps)
            for dtype in args.dtypes.split(",") for mode in args.modes.split(",")]
    print(f"{args.model}, batch {args.requests}, {args.prompt_len}-token prompts, {args.threads} threads, "
          f"ISA {','.join(isa_features(cpu_flags()))}, read bandwidth {bandwidth / 1e9:.1f} GB/s, "
          f"load average {os.getloadavg()[0]:.1f}")
    for run in runs:
        print(f"{run['dtype']} {run['mode']}: {run['kernels']}")
    print(table(runs, bandwidth))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"workload": vars(args) | {"out": str(args.out)}, "threads": args.threads,
                  "isa": isa_features(cpu_flags()), "torch": torch.__version__,
                  "read_bandwidth_gb_s": bandwidth / 1e9, "load_average_after": os.getloadavg()[0], "runs": runs}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
