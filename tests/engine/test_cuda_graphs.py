"""Decode CUDA graphs: bucketed batch sizes, padding rows that touch only the padding block, graphs == eager.

The padding rule is checked on CPU with eager forwards (graphs never run there); the `gpu` class replays real
graphs against eager, bit for bit.
"""
from __future__ import annotations

import random
from unittest import mock

import pytest
import torch

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.cuda_graphs import DecodeGraphs, graph_batch_sizes
from bi_bench.engine.forward_batch import StepInputs
from bi_bench.engine.kernel_set import KernelSet

from needle import bitwise_equal

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=8, seed=1234, ignore_eos=True)


@pytest.mark.parametrize(("max_num_seqs", "sizes"), [
    (1, [1]), (6, [1, 2, 4, 6]), (16, [1, 2, 4, 8, 16]), (20, [1, 2, 4, 8, 16, 20]),
    (64, [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]),
])
def test_graph_batch_sizes(max_num_seqs: int, sizes: list[int]) -> None:
    assert graph_batch_sizes(max_num_seqs) == sizes


def test_padded_step_appends_sequences_in_the_padding_block() -> None:
    step = StepInputs([5, 6], [17, 3], [2 * 16 + 1, 7 * 16 + 3], [0, 1, 2], [18, 4], [[4, 2], [7, -1]], 16, [0, 1])
    padded = step.padded(4, padding_block=9, width=3)
    assert padded.input_ids == [5, 6, 0, 0] and padded.positions == [17, 3, 0, 0]
    assert padded.slots == [33, 115, 9 * 16, 9 * 16]
    assert padded.query_start == [0, 1, 2, 3, 4] and padded.context_lens == [18, 4, 1, 1]
    assert padded.block_tables == [[4, 2, -1], [7, -1, -1], [9, -1, -1], [9, -1, -1]]
    assert padded.logit_rows == [0, 1] and padded.one_token_per_seq


def decode_step(llm: LLM, prompts: list[list[int]]) -> StepInputs:
    """The first decode step of `prompts`, after their prefill has run."""
    engine = llm.engine
    for prompt in prompts:
        engine.add_request(prompt, PARAMS)
    engine.step()
    scheduled = engine.scheduler.schedule()
    rows, _, _ = engine.runner._logit_rows(scheduled)
    step = engine.runner._prepare(scheduled, rows)
    assert step.one_token_per_seq
    return step


def random_prompts(vocab: int, count: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(5, 60))] for _ in range(count)]


@torch.inference_mode()
def logits_of(runner, step: StepInputs, hidden: torch.Tensor | None = None) -> torch.Tensor:
    """The step's logits from `hidden`, or from an eager forward."""
    if hidden is None:
        hidden = runner.model(*step.build(runner.config.device))
    return runner.model.compute_logits(hidden[torch.tensor(step.logit_rows, device=hidden.device)])


def check_padding(device: str, dtype: str, padded_logits) -> None:
    """A decode step's logits and KV cache are the same with padding rows, which write the padding block alone."""
    llm = LLM("random:tiny-qwen3", device=device, dtype=dtype, mode="invariant", max_num_seqs=8, max_model_len=128)
    runner = llm.engine.runner
    step = decode_step(llm, random_prompts(llm.engine.source.config.vocab_size, 3))
    eager = logits_of(runner, step)
    caches = [(layer.k_cache.clone(), layer.v_cache.clone()) for layer in runner.attention_layers]
    assert torch.equal(eager, padded_logits(runner, step))
    for layer, (k_cache, v_cache) in zip(runner.attention_layers, caches):
        assert torch.equal(layer.k_cache[:-1], k_cache[:-1]) and torch.equal(layer.v_cache[:-1], v_cache[:-1])
        assert layer.k_cache[-1].abs().sum() > 0  # the padding rows wrote their own block


def test_padding_rows_change_no_real_row_in_invariant_mode() -> None:
    check_padding("cpu", "float32", lambda runner, step: logits_of(runner, step.padded(8, runner.num_kv_blocks, 8)))


def test_no_graphs_on_cpu() -> None:
    assert LLM("random:tiny-qwen3", max_num_seqs=4, max_model_len=64).engine.runner.graphs is None


def test_graphs_need_graph_safe_kernels() -> None:
    assert KernelSet.choose("cuda", torch.bfloat16, "invariant").graph_safe
    default = KernelSet.choose("cuda", torch.bfloat16, "default")
    assert default.graph_safe and default.attention.name == "triton_dynamic_split"
    assert not KernelSet.choose("cuda", torch.bfloat16, "default", {"attention": "torch_sdpa"}).graph_safe


# ---------------------------------------------------------------- on the GPU

def outputs(mode: str, enforce_eager: bool, prompts: list[list[int]], **engine) -> list[tuple]:
    llm = LLM("random:tiny-qwen3", device="cuda", dtype="bfloat16", mode=mode, enforce_eager=enforce_eager,
              max_num_seqs=64, max_model_len=256, **engine)
    assert (llm.engine.runner.graphs is None) == enforce_eager
    with mock.patch.object(DecodeGraphs, "replay", autospec=True, side_effect=DecodeGraphs.replay) as replay:
        outs = llm.generate(prompts, PARAMS)
    assert replay.called != enforce_eager
    return [(tuple(o.token_ids), tuple(o.logprobs)) for o in outs]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
class TestOnCuda:
    @pytest.mark.parametrize("batch", [1, 3, 5, 17, 33, 64])
    def test_invariant_graphs_equal_eager_bitwise(self, batch: int) -> None:
        prompts = random_prompts(512, batch, seed=batch)
        graphs, eager = outputs("invariant", False, prompts), outputs("invariant", True, prompts)
        for (g_tokens, g_logprobs), (e_tokens, e_logprobs) in zip(graphs, eager):
            assert g_tokens == e_tokens and bitwise_equal(g_logprobs, e_logprobs)

    def test_replay_writes_only_the_padding_block(self) -> None:
        def replay(runner, step: StepInputs) -> torch.Tensor:
            size = runner.graphs.bucket(step)
            assert size == 4  # three sequences pad to the bucket of four
            with torch.inference_mode():
                return logits_of(runner, step, runner.graphs.replay(step, size))

        check_padding("cuda", "bfloat16", replay)

    def test_default_mode_decodes_through_graphs(self) -> None:
        prompts = random_prompts(512, 9)
        assert [len(t) for t, _ in outputs("default", False, prompts)] == [PARAMS.max_tokens] * 9

    def test_kv_cache_is_sized_from_gpu_memory(self) -> None:
        llm = LLM("random:tiny-qwen3", device="cuda", max_num_seqs=4, max_model_len=64)
        assert llm.engine.runner.num_kv_blocks == 4 * 64 // 16  # all the scheduler can use fits
        with pytest.raises(ValueError, match="gpu_memory_utilization"):
            LLM("random:tiny-qwen3", device="cuda", gpu_memory_utilization=1e-6)
