"""The fused Llama layers (engine/layers/fused_decoder.py, one C++ call per step for the whole stack) compute the
bits of the layers they replace: the same requests through an engine whose layers run op by op must agree bit for
bit, in invariant mode and in default mode's kernel sets it stands in for (our linears or the library's, attention
split by phase: decode rows by the row program, prefill sequences by SDPA), whole prompts and chunked prefills
beside decodes."""
from __future__ import annotations

import struct
from dataclasses import replace
from unittest import mock

import pytest
import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.layers import fused_decoder
from bi_bench.engine.models import llama
from bi_bench.kernels import registry
from bi_bench.kernels.cpu.derived import needs_upcast

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    ", "Once upon a time, in a kingdom by the sea, there",
           "1, 2, 3,"]


PHASE_SPLIT = {"rmsnorm": "cpu_halving", "attention": "cpu_phase_split", "pointwise": "cpu_canonical"}
# (mode, kernel overrides)
SETS = {"invariant": ("invariant", {}),
        "default, library linears": ("default", {**PHASE_SPLIT, "matmul": "torch"}),
        "default, our linears": ("default", {**PHASE_SPLIT, "matmul": "cpu_canonical"}),
        "default, measured linears": ("default", {**PHASE_SPLIT, "matmul": "cpu_fastest"})}
# tokens per step: every prompt whole in the first step, or a few tokens a step, so that steps mix prefill chunks
# (of one token, too) with decodes
BATCHED_TOKENS = {"whole prompts": 2048, "chunked": 7}


def run(dtype: str, mode: str, kernels: dict[str, str], fused: bool, batched_tokens: int) -> tuple[list, int]:
    llm = LLM("smollm2-135m", dtype=dtype, mode=mode, kernels=kernels, max_model_len=160, max_num_seqs=8,
              max_num_batched_tokens=batched_tokens)
    model = llm.engine.runner.model.model
    assert model.fused  # what this test is about: the layers take the fused path
    model.fused = fused
    params = [SamplingParams(temperature=0.8, top_p=0.9, seed=seed, max_tokens=10, ignore_eos=True)
              for seed in range(len(PROMPTS))]
    with mock.patch.object(llama, "fused_forward", wraps=fused_decoder.fused_forward) as calls:
        outputs = llm.generate(PROMPTS, params)
    llm.close()
    return [(o.token_ids, bits(o.logprobs), bits(o.raw_logprobs)) for o in outputs], calls.call_count


def bits(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize("batching", BATCHED_TOKENS)
@pytest.mark.parametrize("kernel_set", SETS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_layer_has_the_bits_of_the_layer_it_replaces(dtype: str, kernel_set: str, batching: str) -> None:
    mode, kernels = SETS[kernel_set]
    measured = registry.get("matmul", "cpu_fastest").dtypes
    if kernels.get("matmul") == "cpu_fastest" and getattr(torch, dtype) not in measured:
        pytest.skip("cpu_fastest is default mode's pick only on CPU classes kernels/cpu/measured.py measured")
    upcast = dtype == "bfloat16" and needs_upcast(torch.zeros(1, dtype=torch.bfloat16))
    fused, fused_calls = run(dtype, mode, kernels, True, BATCHED_TOKENS[batching])
    op_by_op, op_by_op_calls = run(dtype, mode, kernels, False, BATCHED_TOKENS[batching])
    # every step, and none; at least the decode steps where a prefill is not fused: SDPA would upcast it, or the
    # measured linear at its row count is oneDNN's
    decodes_only = (upcast and mode == "default") or kernels.get("matmul") == "cpu_fastest"
    assert fused_calls >= (9 if decodes_only else 10) and op_by_op_calls == 0
    assert fused == op_by_op


@pytest.mark.parametrize("past", ["start", "end"])
def test_fused_stack_refuses_a_slot_outside_the_kv_cache(past: str) -> None:
    llm = LLM("smollm2-135m", dtype="float32", mode="invariant", max_model_len=64, max_num_seqs=2)
    attention = llm.engine.runner.model.model.stack.attention[0]
    slots_in_cache = attention.k_cache.view(-1, attention.num_kv_heads, attention.head_dim).shape[0]
    bad_slot = -1 if past == "start" else slots_in_cache

    def with_bad_slot(stack, hidden, batch, *args):  # the last token's K/V aimed just outside the cache
        slots = batch.slot_mapping.clone()
        slots[-1] = bad_slot
        return fused_decoder.fused_forward(stack, hidden, replace(batch, slot_mapping=slots), *args)

    with mock.patch.object(llama, "fused_forward", with_bad_slot), \
            pytest.raises(RuntimeError, match=f"slot {bad_slot} outside the KV cache"):
        llm.generate(["The capital of France is"], SamplingParams(max_tokens=1))
    llm.close()
