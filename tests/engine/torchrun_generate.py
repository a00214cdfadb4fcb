"""Generation under torchrun: `torchrun --nproc_per_node N torchrun_generate.py MODE OUT.json`; rank 0 writes the
outputs before and after a weight update (ranks 1..N-1 never return from LLM(...)).
Used by test_tensor_parallel_launch.py."""
from __future__ import annotations

import json
import os
import sys

import torch

from bi_bench.engine import LLM, SamplingParams

MODEL = "random:tiny-qwen3"
PROMPTS = [[5, 6, 7, 8, 9], [100, 200, 300], list(range(40, 77))]
PARAMS = SamplingParams(temperature=0.8, top_p=0.9, max_tokens=8, seed=3, ignore_eos=True)


def perturbed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` plus fixed noise: new weights that change the outputs."""
    gen = torch.Generator().manual_seed(1)
    return {name: t + 0.05 * torch.randn(t.shape, generator=gen) for name, t in state.items()}


def observe(llm: LLM) -> list[dict]:
    return [{"token_ids": out.token_ids, "logprobs": out.logprobs} for out in llm.generate(PROMPTS, PARAMS)]


def main(mode: str, out_path: str) -> None:
    llm = LLM(MODEL, dtype="float32", mode=mode, tensor_parallel_size=int(os.environ["WORLD_SIZE"]))
    before = observe(llm)
    llm.update_weights(perturbed(LLM(MODEL, dtype="float32").state_dict()))
    with open(out_path, "w") as out:
        json.dump({"rank": int(os.environ["RANK"]), "before": before, "after": observe(llm)}, out)
    llm.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
