"""Golden bits: digests of invariant-mode smollm2 outputs for a fixed set of requests, the same on every machine.

`python tests/engine/golden.py` prints the digests this machine computes; GOLDEN holds the committed ones
(change them only with a kernel change that means to change the bits, and say so in the commit).
"""
from __future__ import annotations

import hashlib
import json
import struct
import sys

from bi_bench.engine import LLM, SamplingParams

GOLDEN = {
    "float32": "56cb96d1eea2e8a197711a8ccb709e53a6161350a7d2b6e41e5dd059c8ad7879",
    "bfloat16": "d565eadf318ef524562c2052dcfeedeec0e8cf8fbca3f9ba60188d23a9f84f99",
}
PROMPTS = ["There once was a lighthouse keeper who", "The capital of France is",
           "def fibonacci(n):", "In 1905, Albert Einstein published"]
SAMPLED = SamplingParams(temperature=0.7, top_p=0.95, min_p=0.02, max_tokens=6, seed=1234, ignore_eos=True)
GREEDY = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)


def digest(dtype: str) -> str:
    """sha256 over every token id and the bits of every processed and raw logprob, of generate and score."""
    llm = LLM("smollm2-135m", dtype=dtype, mode="invariant", max_model_len=128, max_num_seqs=8)
    outputs = llm.generate(PROMPTS, [SAMPLED, GREEDY, SAMPLED, GREEDY])
    scores = llm.score(PROMPTS[:2], [" and then", " Paris, the city"], SAMPLED)
    llm.close()
    record = hashlib.sha256()
    for out in [*outputs, *scores]:
        record.update(struct.pack(f"<{len(out.token_ids)}i", *out.token_ids))
        for values in (out.logprobs, out.raw_logprobs):
            record.update(struct.pack(f"<{len(values)}f", *values))
    return record.hexdigest()


if __name__ == "__main__":
    dtypes = sys.argv[1:] or list(GOLDEN)
    print(json.dumps({dtype: digest(dtype) for dtype in dtypes}))
