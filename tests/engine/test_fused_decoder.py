"""The fused Llama layer (engine/layers/fused_decoder.py, one C++ call per layer) computes the bits of the
layer it replaces: the same requests through an engine whose layers run op by op must agree bit for bit."""
from __future__ import annotations

import struct
from unittest import mock

import pytest

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.layers import fused_decoder
from bi_bench.engine.models import llama

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    ", "Once upon a time, in a kingdom by the sea, there",
           "1, 2, 3,"]


def run(dtype: str, fused: bool) -> tuple[list, int]:
    llm = LLM("smollm2-135m", dtype=dtype, mode="invariant", max_model_len=160, max_num_seqs=8)
    layers = llm.engine.runner.model.model.layers
    assert all(layer.fused for layer in layers)  # what this test is about: the layers take the fused path
    for layer in layers:
        layer.fused = fused
    params = [SamplingParams(temperature=0.8, top_p=0.9, seed=seed, max_tokens=10, ignore_eos=True)
              for seed in range(len(PROMPTS))]
    with mock.patch.object(llama, "fused_forward", wraps=fused_decoder.fused_forward) as calls:
        outputs = llm.generate(PROMPTS, params)
    llm.close()
    return [(o.token_ids, bits(o.logprobs), bits(o.raw_logprobs)) for o in outputs], calls.call_count


def bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_layer_has_the_bits_of_the_layer_it_replaces(dtype: str) -> None:
    fused, fused_calls = run(dtype, fused=True)
    op_by_op, op_by_op_calls = run(dtype, fused=False)
    assert fused_calls >= 30 * 10 and op_by_op_calls == 0  # every layer of every step, and none
    assert fused == op_by_op
