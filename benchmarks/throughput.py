"""End-to-end throughput: our engine (default, invariant, tp-invariant) against Hugging Face generate, same prompts.

    python benchmarks/throughput.py --model smollm2-135m --dtype bfloat16 --requests 64 --prompt-len 128 \
        --new-tokens 128 --out benchmarks/results/throughput.json

Every figure is measured in this one run, side by side; ratios are the portable result.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from bi_bench.engine import LLM, SamplingParams
from bi_bench.harness.environment import cpu_model
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.isa import cpu_flags, isa_features


def make_prompts(vocab: int, count: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(count)]


def time_generate(llm: LLM, prompts: list[list[int]], new_tokens: int) -> dict:
    """One timed generate of `new_tokens` per prompt (greedy)."""
    start = time.perf_counter()
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True))
    seconds = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for o in outputs)
    return {"seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds}


def time_engine(model: str, dtype: str, mode: str, tp: int, prompts: list[list[int]], new_tokens: int,
                kernels: dict[str, str]) -> dict:
    llm = LLM(model, dtype=dtype, mode=mode, tensor_parallel_size=tp, kernels=kernels, max_num_seqs=len(prompts),
              max_model_len=len(prompts[0]) + new_tokens)
    llm.generate(prompts[:2], SamplingParams(temperature=0.0, max_tokens=2))  # warm-up
    timing = time_generate(llm, prompts, new_tokens)
    chosen = llm.kernels
    llm.close()
    name = f"bi-bench {mode}" + (" " + ",".join(f"{op}={v}" for op, v in kernels.items()) if kernels else "")
    return {"engine": name, "mode": mode, "overrides": kernels, "tp": tp, "kernels": chosen, **timing}


def time_hf(weights_dir: Path, dtype: str, prompts: list[list[int]], new_tokens: int) -> dict:
    model = AutoModelForCausalLM.from_pretrained(weights_dir, dtype=getattr(torch, dtype))
    ids = torch.tensor(prompts)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    seconds = time.perf_counter() - start
    tokens = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return {"engine": "hf generate", "seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds}


def side_by_side(runs: list[dict]) -> dict[str, float]:
    """Each run against our default mode (default kernels): tok/s over HF generate, wall time over default."""
    by_engine = {run["engine"]: run for run in runs}
    default = by_engine.get("bi-bench default")
    if default is None:
        return {}
    ratios = {}
    if "hf generate" in by_engine:
        ratios["default_vs_hf_tok_per_s"] = default["tok_per_s"] / by_engine["hf generate"]["tok_per_s"]
    for run in runs:
        if run["engine"] not in ("hf generate", "bi-bench default"):
            ratios[f"{run['engine'].removeprefix('bi-bench ')}_vs_default_wall"] = run["seconds"] / default["seconds"]
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--modes", default="default,invariant,tp-invariant")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel degree of the engine runs")
    parser.add_argument("--kernels", default="", metavar="OP=VARIANT,...",
                        help="also time default mode with these variants, e.g. matmul=torch")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    probe = LLM(args.model, dtype="float32", num_kv_blocks=1)
    prompts = make_prompts(probe.source.config.vocab_size, args.requests, args.prompt_len, seed=0)
    runs = [time_engine(args.model, args.dtype, mode, args.tp, prompts, args.new_tokens, {})
            for mode in args.modes.split(",")]
    if args.kernels:
        overrides = dict(item.split("=", 1) for item in args.kernels.split(","))
        runs.append(time_engine(args.model, args.dtype, "default", args.tp, prompts, args.new_tokens, overrides))
    if not args.skip_hf and probe.source.weights_dir is not None:
        runs.append(time_hf(probe.source.weights_dir, args.dtype, prompts, args.new_tokens))
    ratios = side_by_side(runs)
    report = {"workload": vars(args) | {"out": str(args.out) if args.out else None}, "runs": runs, "ratios": ratios,
              "hardware": {"cpu": cpu_model(), "isa": isa_features(cpu_flags()), "cpu_kernels": extension().matmul_isa(),
                           "threads": torch.get_num_threads(), "torch": torch.__version__}}
    for run in runs:
        print(f"{run['engine']:<32} {run['tokens']:>7} tokens {run['seconds']:>8.1f} s {run['tok_per_s']:>9.1f} tok/s")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
