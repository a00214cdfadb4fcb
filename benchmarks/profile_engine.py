"""Where one generate() spends its time: cProfile of the engine on the throughput workload, top functions.

    python benchmarks/profile_engine.py --mode invariant --requests 16 --new-tokens 16 --threads 1
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time

import torch

from bi_bench.engine import LLM, SamplingParams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--mode", default="default")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    llm = LLM(args.model, dtype=args.dtype, mode=args.mode, max_num_seqs=args.requests,
              max_model_len=args.prompt_len + args.new_tokens)
    rng = random.Random(0)
    vocab = llm.source.config.vocab_size
    prompts = [[rng.randrange(3, vocab) for _ in range(args.prompt_len)] for _ in range(args.requests)]
    llm.generate(prompts[:2], SamplingParams(temperature=0.0, max_tokens=2))  # warm-up
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(llm.generate, prompts, SamplingParams(temperature=0.0, max_tokens=args.new_tokens, ignore_eos=True))
    print(f"{args.mode} kernels={llm.kernels} threads={args.threads}: {time.perf_counter() - start:.1f} s")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
