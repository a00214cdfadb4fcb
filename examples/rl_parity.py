"""Sampler == trainer, bit for bit: the RL loop in miniature, on CPU.

    python examples/rl_parity.py [--model random:tiny-qwen3] [--dtype bfloat16]

1. the engine samples completions (temperature 0.8, top-p 0.95, seeded) in invariant mode;
2. a trainer recomputes their logprobs with an unmodified Hugging Face model inside
   batch_invariant_mode(), under the same temperature / top-p processing;
3. the k3 KL estimate between sampler and trainer is printed — exactly 0 when the bits agree;
4. one "optimizer step" perturbs the weights, the engine takes them with update_weights(), and the
   check runs again: cached prefixes from the old weights are never reused.
"""
from __future__ import annotations

import argparse

import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine import k3_kl, trainer_logprobs, trainer_model

PARAMS = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=16, seed=7, ignore_eos=True)


def check(llm: LLM, prompts: list[list[int]], label: str) -> None:
    outputs = llm.generate(prompts, PARAMS)
    model = trainer_model(llm)
    for prompt, out in zip(prompts, outputs):
        recomputed = trainer_logprobs(model, llm, prompt, out.token_ids, PARAMS)
        print(f"{label}: bitwise={recomputed == out.logprobs} k3_kl={k3_kl(out.logprobs, recomputed):.3e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:tiny-qwen3")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    llm = LLM(args.model, dtype=args.dtype, mode="invariant")
    vocab = llm.source.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, vocab, (n,), generator=generator).tolist() for n in (12, 30, 7)]
    check(llm, prompts, "before update")

    updated = {name: tensor + 0.01 * torch.randn(tensor.shape, generator=generator).to(tensor.dtype)
               for name, tensor in llm.state_dict().items()}
    llm.update_weights(updated)
    check(llm, prompts, "after update ")


if __name__ == "__main__":
    main()
