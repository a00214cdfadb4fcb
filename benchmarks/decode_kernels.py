"""Default mode's candidates per op at a model's decode shapes: torch's library paths against our kernels.

    python benchmarks/decode_kernels.py --dtypes float32,bfloat16 --m 1,64 --out benchmarks/results/decode_kernels.json

Each figure is one decode step's worth of an op: a pass over --layers distinct weights (caches) in turn, as a
step reads them, so a weight is not left hot in cache by the call before unless the whole model fits. Linears at
the model's shapes (q, k and v together as "qkv"; gate and up as "gate/up"), attention decode rows of --context
cached keys for M sequences, RMSNorm with its residual add at [M, hidden] (twice per layer), log_softmax at
[M, vocab] (once per step). The candidates run interleaved, pass by pass, in one process; the fastest is the one
with the smallest minimum over --repeats passes: on a shared machine a pass now and then waits for a core, and
the minimum is the pass that did not.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from kernel_variants import attention_batch
from transformers import PretrainedConfig

from bi_bench.engine import resolve
from bi_bench.engine.models.llama import head_dim_of
from bi_bench.kernels import AttentionMetadata, get
from bi_bench.kernels.cpu.isa import cpu_flags, isa_features

CANDIDATES = {
    "matmul": ("torch", "onednn_packed", "fp32_accum", "cpu_canonical"),
    "attention": ("torch_sdpa", "cpu_phase_split", "cpu_row_program"),
    "rmsnorm": ("torch", "cpu_halving"),
    "log_softmax": ("torch", "cpu_canonical"),
}
BLOCK = 16

Pass = Callable[[], object]


def linear_shapes(config: PretrainedConfig) -> dict[str, list[tuple[int, int]]]:
    """(out, in) features of each linear a layer runs, by kind; lm_head once per step."""
    hidden, head_dim = config.hidden_size, head_dim_of(config)
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    return {"qkv": [(q, hidden), (kv, hidden), (kv, hidden)], "o": [(hidden, q)],
            "gate/up": [(config.intermediate_size, hidden)] * 2, "down": [(hidden, config.intermediate_size)],
            "lm_head": [(config.vocab_size, hidden)]}


def weights(shapes: list[tuple[int, int]], count: int, dtype: torch.dtype) -> list[torch.nn.Parameter]:
    # Parameters, as in the engine: variants cache converted or packed copies on them
    return [torch.nn.Parameter(torch.randn(shape).div(shape[1] ** 0.5).to(dtype), requires_grad=False)
            for _ in range(count) for shape in shapes]


def matmul_passes(config: PretrainedConfig, layers: int, m: int, dtype: torch.dtype) -> dict[str, dict[str, Pass]]:
    passes = {}
    for kind, shapes in linear_shapes(config).items():
        params = weights(shapes, 1 if kind == "lm_head" else layers, dtype)
        x = {k: torch.randn(m, k).to(dtype) for k in {shape[1] for shape in shapes}}
        passes[f"linear {kind}"] = {name: _linear_pass(name, x, params) for name in _supported("matmul", dtype)}
    return passes


def _linear_pass(name: str, x: dict[int, torch.Tensor], params: list[torch.nn.Parameter]) -> Pass:
    fn = get("matmul", name).fn
    return lambda: [fn(x[w.shape[1]], w) for w in params]


def attention_passes(config: PretrainedConfig, layers: int, m: int, context: int, dtype: torch.dtype
                     ) -> dict[str, dict[str, Pass]]:
    head_dim = head_dim_of(config)
    batches = [attention_batch(context, m, 1, dtype) for _ in range(layers)]

    def one_pass(fn: Callable) -> Pass:
        def run() -> None:
            meta = batches[0][3]
            # one fresh metadata per step, shared by its layers, as in the engine (kernels memoize on it)
            step_meta = AttentionMetadata(meta.query_start, meta.context_lens, meta.block_tables, BLOCK)
            for q, k, v, _ in batches:
                fn(q, k, v, step_meta, head_dim ** -0.5)
        return run

    return {"attention": {name: one_pass(get("attention", name).fn) for name in _supported("attention", dtype)}}


def norm_passes(config: PretrainedConfig, layers: int, m: int, dtype: torch.dtype) -> dict[str, dict[str, Pass]]:
    hidden = config.hidden_size
    norms = [(torch.randn(m, hidden).to(dtype), torch.randn(m, hidden).to(dtype), torch.rand(hidden).to(dtype))
             for _ in range(2 * layers)]
    logits = torch.randn(m, config.vocab_size).to(dtype)

    def rmsnorm_pass(fn: Callable) -> Pass:
        return lambda: [fn(x, w, config.rms_norm_eps, residual) for x, residual, w in norms]

    return {"rmsnorm": {name: rmsnorm_pass(get("rmsnorm", name).fn) for name in _supported("rmsnorm", dtype)},
            "log_softmax": {name: (lambda fn=get("log_softmax", name).fn: fn(logits))
                            for name in _supported("log_softmax", dtype)}}


def _supported(op: str, dtype: torch.dtype) -> list[str]:
    return [name for name in CANDIDATES[op] if get(op, name).supports("cpu", dtype)]


def pass_ms(passes: dict[str, Pass], repeats: int) -> dict[str, list[float]]:
    """ms of each of `repeats` runs of each pass, the passes interleaved so drift hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in passes}
    for fn in passes.values():
        fn()  # warm-up: packs and converted copies are made here
    for _ in range(repeats):
        for name, fn in passes.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def measure(config: PretrainedConfig, ops: list[str], layers: int, m: int, context: int, dtype: torch.dtype,
            repeats: int) -> list[dict]:
    passes = {}
    if "matmul" in ops:
        passes |= matmul_passes(config, layers, m, dtype)
    if "attention" in ops:
        passes |= attention_passes(config, layers, m, context, dtype)
    passes |= {op: p for op, p in norm_passes(config, layers, m, dtype).items() if op in ops}
    rows = []
    for op, candidates in passes.items():
        samples = pass_ms(candidates, repeats)
        best = {name: min(times) for name, times in samples.items()}
        rows.append({"op": op, "m": m, "dtype": str(dtype).removeprefix("torch."), "min_ms": best,
                     "median_ms": {name: statistics.median(times) for name, times in samples.items()},
                     "fastest": min(best, key=best.get)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| op (one step) | dtype | M | candidates: min ms (median), min / fastest's min | fastest |",
             "|---|---|---|---|---|"]
    for row in rows:
        best = row["min_ms"][row["fastest"]]
        cells = ", ".join(f"{name} {ms:.2f} ({row['median_ms'][name]:.2f}) {ms / best:.2f}x"
                          for name, ms in row["min_ms"].items())
        lines.append(f"| {row['op']} | {row['dtype']} | {row['m']} | {cells} | {row['fastest']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--ops", default=",".join(CANDIDATES), help=f"any of {','.join(CANDIDATES)}")
    parser.add_argument("--m", default="1,64", help="rows per step: sequences decoding together")
    parser.add_argument("--layers", type=int, help="distinct weights per kind (default: the model's layers)")
    parser.add_argument("--context", type=int, default=192, help="cached keys per decoding sequence")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = resolve(args.model).config
    layers = args.layers or config.num_hidden_layers
    rows = [row for dtype in args.dtypes.split(",") for m in (int(v) for v in args.m.split(","))
            for row in measure(config, args.ops.split(","), layers, m, args.context, getattr(torch, dtype),
                               args.repeats)]
    print(f"{args.model} decode shapes, {layers} layers, {args.threads} threads, "
          f"ISA {','.join(isa_features(cpu_flags()))}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"workload": vars(args) | {"out": str(args.out)}, "isa": isa_features(cpu_flags()),
                  "torch": torch.__version__, "load_average_after": os.getloadavg()[0], "rows": rows}
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
