"""End-to-end throughput, engine against engine, through the harness's backends: same prompts, one run.

    python benchmarks/throughput.py --backends bi-bench,vllm,transformers,llama.cpp --dtypes float32,bfloat16 \
        --requests 64,1 --prompt-len 128 --new-tokens 128 --out benchmarks/results/throughput-backends.json

Each backend x dtype x mode gets one engine (a vLLM server for vllm), a warm-up, then one timed greedy generate per
request count; `--rounds N` sweeps all of them N times, one engine after another, and reports each one's median
round beside the range (a neighbour's load that comes and goes then falls on every engine alike). llama.cpp
(`make llama`) runs benchmarks/llama_cpp_worker.py in its own venv on GGUF converted from the same safetensors by
the converter its sdist vendors, and on the GGUF the model shipped as. Beside each figure: the memory-bandwidth
bound of a decode step that reads every weight once (bandwidth measured here, at this thread count, just before
and just after that figure's own run: this host's bandwidth moves between rounds), scaled by the requests sharing
that read, and the compute bound of two fp32 flops per parameter per token at torch's own matmul
rate (at 64 requests a step is compute-bound; bf16 on AMX can pass it). An engine that fails is reported with its
error, never raised. Ratios within the one run are the portable result.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Callable

import torch
from gguf import GGUFReader, GGMLQuantizationType
from platformdirs import user_cache_dir
from transformers import AutoModelForCausalLM

from bi_bench.engine import SamplingParams
from bi_bench.engine import ModelSource, resolve
from bi_bench.harness.backends import EngineError, NotApplicable
from bi_bench.harness.run.environment import cpu_model
from bi_bench.harness.run.model_info import stored_parameters
from bi_bench.harness.run.pool import EnginePool
from bi_bench.harness.suite.schema import BackendSpec, ModelSpec
from bi_bench.kernels.cpu.extension import target_isa
from bi_bench.kernels.cpu.isa import cpu_flags, isa_features

BYTES = {"float32": 4, "bfloat16": 2}
REPO = Path(__file__).resolve().parent.parent
LLAMA_VENV = REPO / ".venv-llama"
GGUF_OUTTYPE = {"float32": "f32", "bfloat16": "bf16"}


def make_prompts(vocab: int, count: int, length: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(count)]


def time_generate(llm, prompts: list[list[int]], new_tokens: int) -> dict:
    """One timed generate of `new_tokens` per prompt (greedy)."""
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    start = time.perf_counter()
    outputs = llm.generate(prompts, [params] * len(prompts))
    seconds = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for o in outputs)
    return {"seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds}


def read_bandwidth(gigabytes: float = 2.0) -> float:
    """Bytes/s that torch's sum reads at the current thread count (best of 3 passes over a buffer far larger than
    any cache, made once)."""
    buffer = _ones(int(gigabytes * 2**30) // 4)
    buffer.sum()
    best = min(_timed(lambda: buffer.sum()) for _ in range(3))
    return buffer.numel() * 4 / best


@cache
def _ones(count: int) -> torch.Tensor:
    return torch.ones(count, dtype=torch.float32)


def bracketed(timed_run: Callable[[], dict]) -> dict:
    """timed_run()'s figures with the read bandwidth (GB/s) taken just before and just after it."""
    before = read_bandwidth()
    run = timed_run()
    return {**run, "read_bandwidth_gb_s": [before / 1e9, read_bandwidth() / 1e9]}


def matmul_rate(size: int = 2048) -> float:
    """fp32 flop/s of torch's matmul (MKL) on a large square at the current thread count, best of 3: the compute
    bound that decode rows meet once enough of them share each weight read."""
    a = torch.randn(size, size)
    a @ a
    return 2 * size**3 / min(_timed(lambda: a @ a) for _ in range(3))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_backend(backend: str, model: str, dtype: str, mode: str, prompts: list[list[int]], requests: list[int],
                 new_tokens: int) -> list[dict]:
    spec = ModelSpec(id=model, dtype=dtype, max_model_len=len(prompts[0]) + new_tokens + 16, max_num_seqs=max(requests),
                     backend=BackendSpec(name=backend, args=["--enforce-eager"] if backend == "vllm" else [],
                                         env={"VLLM_CPU_OMP_THREADS_BIND": f"0-{torch.get_num_threads() - 1}"}
                                         if backend == "vllm" else {}))
    label = {"backend": backend, "dtype": dtype, "mode": mode}
    pool = EnginePool(spec, "cpu")
    try:
        # no prefix cache: every timed prompt is prefilled, as in llama.cpp's cleared context (the warm-up and the
        # previous request count send the same prompts)
        cached = "enable_prefix_caching" in pool.backend.capabilities.settings
        engine = pool.get(mode=mode, **({"enable_prefix_caching": False} if cached else {}))
        warm_up = prompts[:2]
        engine.generate(warm_up, [SamplingParams(temperature=0.0, max_tokens=2)] * len(warm_up))
        return [{**label, "requests": count, **bracketed(lambda: time_generate(engine, prompts[:count], new_tokens))}
                for count in requests]
    except (EngineError, NotApplicable) as exc:
        return [{**label, "requests": count, "error": f"{type(exc).__name__}: {exc}"} for count in requests]
    finally:
        pool.close()


def time_hf_generate(weights_dir: Path, dtype: str, prompts: list[list[int]], requests: list[int],
                     new_tokens: int) -> list[dict]:
    """Hugging Face's own generate (no padding: every prompt has the same length)."""
    model = AutoModelForCausalLM.from_pretrained(weights_dir, dtype=getattr(torch, dtype))
    def timed(count: int) -> dict:
        ids = torch.tensor(prompts[:count])
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        seconds = time.perf_counter() - start
        tokens = (out.shape[1] - ids.shape[1]) * ids.shape[0]
        return {"seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds}

    return [{"backend": "hf generate", "dtype": dtype, "mode": "default", "requests": count,
             **bracketed(lambda: timed(count))} for count in requests]


def llama_gguf(weights_dir: Path, dtype: str) -> Path:
    """The safetensors of `weights_dir` as a GGUF of `dtype`, converted once by llama.cpp's own converter."""
    target = Path(user_cache_dir("bi-bench")) / "llama-cpp" / f"{weights_dir.name}-{GGUF_OUTTYPE[dtype]}.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        vendor = LLAMA_VENV / "src" / "vendor" / "llama.cpp"
        partial = target.with_suffix(".partial")
        subprocess.run([sys.executable, str(vendor / "convert_hf_to_gguf.py"), str(weights_dir), "--outtype",
                        GGUF_OUTTYPE[dtype], "--outfile", str(partial)], check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(vendor / "gguf-py")})
        partial.rename(target)
    return target


def gguf_weights(path: Path) -> tuple[str, int]:
    """The GGUF's most common tensor type, lower case (q4_1, f32, ...), and the bytes of all its tensors."""
    tensors = GGUFReader(path).tensors
    types = [tensor.tensor_type for tensor in tensors]
    return GGMLQuantizationType(max(set(types), key=types.count)).name.lower(), sum(t.n_bytes for t in tensors)


def time_llama_cpp(gguf: Path, dtype: str, prompts: list[list[int]], requests: list[int], new_tokens: int
                   ) -> list[dict]:
    label = {"backend": "llama.cpp", "dtype": dtype, "mode": "default"}
    python = LLAMA_VENV / "bin" / "python"
    if not python.exists():
        return [{**label, "requests": count, "error": f"{python} is missing: make llama"} for count in requests]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as prompts_file:
        json.dump(prompts, prompts_file)
        prompts_file.flush()

        # one worker per request count, so that each figure's bandwidth is taken around its own run
        def timed(count: int) -> dict:
            done = subprocess.run([str(python), str(REPO / "benchmarks" / "llama_cpp_worker.py"), str(gguf),
                                   str(torch.get_num_threads()), str(new_tokens), str(count), prompts_file.name],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                error = (f"killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
                         else (done.stderr.strip().splitlines() or ["no output"])[-1])
                return {"error": f"llama.cpp: {error}"}
            report = json.loads(done.stdout.strip().splitlines()[-1])
            return {"version": report["version"], **report["runs"][0]}

        return [{**label, "requests": count, **bracketed(lambda: timed(count))} for count in requests]


def sweep(args: argparse.Namespace, source: ModelSource, prompts: list[list[int]], requests: list[int]) -> list[dict]:
    """One timed run of every engine the arguments name, one after the other."""
    runs = []
    for dtype in args.dtypes.split(","):
        for backend in args.backends.split(","):
            if backend == "llama.cpp":
                runs += time_llama_cpp(llama_gguf(source.weights_dir, dtype), dtype, prompts, requests,
                                       args.new_tokens)
                continue
            for mode in args.modes.split(","):
                runs += time_backend(backend, args.model, dtype, mode, prompts, requests, args.new_tokens)
        if not args.skip_hf and source.weights_dir is not None:
            runs += time_hf_generate(source.weights_dir, dtype, prompts, requests, args.new_tokens)
    if "llama.cpp" in args.backends.split(",") and source.origin_file is not None:
        shipped, weight_bytes = gguf_weights(source.origin_file)
        runs += [{**run, "weight_bytes": weight_bytes}
                 for run in time_llama_cpp(source.origin_file, shipped, prompts, requests, args.new_tokens)]
    return runs


def medians(runs: list[dict]) -> list[dict]:
    """Per engine and request count, the median round's figures (the first round's error where one failed)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["backend"], run["dtype"], run["mode"], run["requests"]), []).append(run)
    summary = []
    for rounds in groups.values():
        timed = sorted((r for r in rounds if "error" not in r), key=lambda r: r["tok_per_s"])
        if not timed:
            summary.append({k: v for k, v in rounds[0].items() if k != "round"})
            continue
        median = timed[len(timed) // 2]
        summary.append({**{k: v for k, v in median.items() if k != "round"},
                        "rounds_tok_per_s": [r["tok_per_s"] for r in rounds if "error" not in r],
                        "failed_rounds": len(rounds) - len(timed)})
    return summary


def run_bandwidth(run: dict, start: float) -> float:
    """Bytes/s for a run's bound: the mean of the readings around it, or the one at the start where it has none."""
    around = run.get("read_bandwidth_gb_s")
    return sum(around) / len(around) * 1e9 if around else start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--backends", default="bi-bench,transformers",
                        help="any of bi-bench,vllm,transformers,llama.cpp")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--modes", default="default,invariant")
    parser.add_argument("--requests", default="64,1", help="request counts, each one timed generate")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--skip-hf", action="store_true", help="leave out Hugging Face's own generate")
    parser.add_argument("--rounds", type=int, default=1,
                        help="sweeps over every engine, one after another; the median round is reported")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    source = resolve(args.model)
    params = stored_parameters(source)
    requests = [int(count) for count in args.requests.split(",")]
    prompts = make_prompts(source.config.vocab_size, max(requests), args.prompt_len, seed=0)
    bandwidth, flops = read_bandwidth(), matmul_rate()
    runs = []
    for round_ in range(args.rounds):
        runs += [{**run, "round": round_} for run in sweep(args, source, prompts, requests)]
    for run in runs:
        weight_bytes = run.get("weight_bytes") or params * BYTES[run["dtype"]]
        run["bound_tok_per_s"] = run["requests"] * run_bandwidth(run, bandwidth) / weight_bytes
        run["fp32_compute_bound_tok_per_s"] = flops / (2 * params)
    report = {"workload": vars(args) | {"out": str(args.out) if args.out else None},
              "hardware": {"cpu": cpu_model(), "isa": isa_features(cpu_flags()), "cpu_kernels": target_isa(),
                           "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "read_bandwidth_gb_s": bandwidth / 1e9, "fp32_matmul_gflop_s": flops / 1e9},
              "parameters": params, "runs": medians(runs) if args.rounds > 1 else runs}
    if args.rounds > 1:
        report["rounds"] = runs
        report["hardware"]["read_bandwidth_after_gb_s"] = read_bandwidth() / 1e9
    print(f"{report['hardware']['cpu']} ({','.join(report['hardware']['isa'])}), {torch.get_num_threads()} threads, "
          f"read bandwidth {bandwidth / 1e9:.1f} GB/s, fp32 matmul {flops / 1e9:.0f} GFLOP/s; {args.prompt_len}-token "
          f"prompts x {args.new_tokens} new tokens")
    for run in report["runs"]:
        spread = (f" [rounds {min(run['rounds_tok_per_s']):.1f}-{max(run['rounds_tok_per_s']):.1f}]"
                  if run.get("rounds_tok_per_s") else "")
        figure = (f"{run['tok_per_s']:>8.1f} tok/s ({run['tok_per_s'] / run['bound_tok_per_s']:.0%} of bound at "
                  f"{run_bandwidth(run, bandwidth) / 1e9:.0f} GB/s){spread}"
                  if "error" not in run else run["error"][:90])
        print(f"{run['backend']:<13} {run['dtype']:<9} {run['mode']:<10} {run['requests']:>3} req  {figure}  "
              f"bound {run['bound_tok_per_s']:.0f}, fp32 compute {run['fp32_compute_bound_tok_per_s']:.0f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
