"""KV-cache sizing on CUDA (blocks from measured GPU memory, and the warm-up step that measures it), and the CPU
cache's memory taken only as blocks are written."""
from __future__ import annotations

import pytest
import torch

from bi_bench.engine.config import EngineConfig
from bi_bench.engine.kv_cache import blocks_in_gpu_memory, warm_up_step, zeroed_cache

GIB = 1 << 30
MIB = 1 << 20


@pytest.mark.parametrize(("free", "total", "utilization", "per_block", "used", "blocks"), [
    (139 * GIB, 140 * GIB, 0.9, 2 * MIB, 10 * GIB, (126 * GIB - 10 * GIB) // (2 * MIB)),  # a GPU of its own
    (30 * GIB, 140 * GIB, 0.9, 2 * MIB, 10 * GIB, 30 * GIB // (2 * MIB)),  # another process holds most of it
    (139 * GIB, 140 * GIB, 0.5, 2 * MIB, 10 * GIB, 60 * GIB // (2 * MIB)),
    (80 * GIB, 80 * GIB, 1.0, 3 * MIB, 0, 80 * GIB // (3 * MIB)),
    (139 * GIB, 140 * GIB, 0.1, 2 * MIB, 20 * GIB, 0),  # the weights alone exceed the share
    (1 * MIB, 140 * GIB, 0.9, 2 * MIB, 10 * GIB, 0),  # less than one block free
])
def test_blocks_in_gpu_memory(free: int, total: int, utilization: float, per_block: int, used: int,
                              blocks: int) -> None:
    assert blocks_in_gpu_memory(free, total, utilization, per_block, used) == blocks


@pytest.mark.parametrize(("max_model_len", "max_num_batched_tokens", "max_num_seqs", "seqs", "length"), [
    (1024, 8192, 128, 8, 1024),
    (4096, 2048, 64, 1, 2048),  # a prompt longer than the budget is prefilled in budget-sized chunks
    (100, 2048, 4, 4, 100),  # max_num_seqs bounds the sequences
])
def test_warm_up_step_fills_the_token_budget(max_model_len: int, max_num_batched_tokens: int, max_num_seqs: int,
                                             seqs: int, length: int) -> None:
    config = EngineConfig("random:tiny-qwen3", max_model_len=max_model_len,
                          max_num_batched_tokens=max_num_batched_tokens, max_num_seqs=max_num_seqs)
    step, blocks = warm_up_step(config)
    assert step.context_lens == [length] * seqs and len(step.input_ids) == seqs * length
    assert step.logit_rows == list(range(seqs * length))
    assert blocks == seqs * -(-length // 16)
    assert len(set(step.slots)) == len(step.slots) and max(step.slots) < blocks * 16  # each token its own slot


def test_gpu_memory_utilization_must_be_a_share() -> None:
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="gpu_memory_utilization"):
            EngineConfig("random:tiny-qwen3", gpu_memory_utilization=bad)


def resident_mib() -> int:
    """From the page tables (smaps_rollup): VmRSS lags for pages that other threads touched."""
    return int(open("/proc/self/smaps_rollup").read().split("\nRss:")[1].split()[0]) // 1024


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_cache_takes_memory_as_blocks_are_written(dtype: torch.dtype) -> None:
    shape = (1024, 16, 8, 128)  # block, slot, head, dim: 64 MiB in fp32, 32 in bf16
    size_mib = 64 * dtype.itemsize // 4
    before = resident_mib()
    cache = zeroed_cache(shape, dtype, "cpu")
    after_allocation = resident_mib()
    cache[:8] = 1  # eight blocks written: 1/128 of the cache
    after_writing = resident_mib()
    assert cache.shape == shape and cache.dtype == dtype and cache.is_contiguous()
    assert cache.data_ptr() % 64 == 0
    assert torch.count_nonzero(cache[8:]) == 0 and bool((cache[:8] == 1).all())
    assert after_allocation - before < size_mib // 8 and after_writing - before < size_mib // 4
    cache.fill_(2)  # the control: written everywhere, it is all resident
    assert resident_mib() - before > size_mib * 3 // 4
