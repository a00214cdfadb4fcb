"""How far the trainer's recompute is from the sampler's logprobs, per mode and lm_head precision.

    python benchmarks/trainer_parity.py --model smollm2-135m --dtype bfloat16 --out benchmarks/results/trainer_parity.json

Sampler: the engine generates (temperature 0.8, top-p 0.95, seeded) a batch of requests. Trainer: an unmodified
Hugging Face model on the same weights recomputes each completion's processed logprobs in one forward (inside
batch_invariant_mode in invariant mode, stock kernels and SDPA in default mode). Reported, with the lm_head in
the model dtype and in fp32: bitwise-equal tokens; sampled tokens outside the trainer's top-p nucleus (their
recomputed processed logprob is -inf); max |Δ| and k3 KL over the rest; max and mean |Δ| of the raw logprobs.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine import k3_kl, trainer_logprobs, trainer_model

PARAMS = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=32, seed=5, ignore_eos=True)
UNPROCESSED = SamplingParams(temperature=1.0)  # the processed logprobs of temperature 1, no top-k/p: the raw ones


def measure(model: str, dtype: str, mode: str, lm_head_fp32: bool, prompts: list[list[int]]) -> dict:
    llm = LLM(model, dtype=dtype, mode=mode, lm_head_fp32=lm_head_fp32, max_num_seqs=len(prompts))
    outputs = llm.generate(prompts, PARAMS)
    trainer = trainer_model(llm)
    processed, raw = [], []
    for prompt, out in zip(prompts, outputs):
        processed += zip(out.logprobs, trainer_logprobs(trainer, llm, prompt, out.token_ids, PARAMS))
        raw += zip(out.raw_logprobs, trainer_logprobs(trainer, llm, prompt, out.token_ids, UNPROCESSED))
    # a token the sampler drew can fall outside the trainer's top-p nucleus: its recomputed logprob is -inf
    finite = [(a, b) for a, b in processed if math.isfinite(b)]
    return {"mode": mode, "lm_head_fp32": lm_head_fp32, "tokens": len(processed),
            "bitwise_equal_tokens": sum(a == b for a, b in processed),
            "outside_trainer_nucleus": len(processed) - len(finite),
            "max_abs_dlogprob": max(abs(a - b) for a, b in finite),
            "k3_kl": k3_kl(*zip(*finite)),
            "raw_max_abs_dlogprob": max(abs(a - b) for a, b in raw),
            "raw_mean_abs_dlogprob": sum(abs(a - b) for a, b in raw) / len(raw)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=48)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    vocab = LLM(args.model, dtype=args.dtype, num_kv_blocks=1).source.config.vocab_size
    rng = random.Random(0)
    prompts = [[rng.randrange(3, vocab) for _ in range(rng.randint(8, args.prompt_len))] for _ in range(args.requests)]
    rows = [measure(args.model, args.dtype, mode, fp32, prompts)
            for mode in ("default", "invariant") for fp32 in (False, True)]
    for row in rows:
        print(f"{row['mode']:<10} lm_head {'fp32' if row['lm_head_fp32'] else args.dtype:<9} "
              f"bitwise {row['bitwise_equal_tokens']:>4}/{row['tokens']:<4} "
              f"outside trainer's nucleus {row['outside_trainer_nucleus']:>3} max|Δ| {row['max_abs_dlogprob']:.3e} "
              f"k3 KL {row['k3_kl']:.3e}  raw: max|Δ| {row['raw_max_abs_dlogprob']:.3e} "
              f"mean|Δ| {row['raw_mean_abs_dlogprob']:.3e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"workload": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                       indent=2))


if __name__ == "__main__":
    main()
