"""Engines for one model, built on demand and kept for the next case that wants the same settings."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from bi_bench.engine import LLM
from bi_bench.harness.suite import ModelSpec

# Loading weights dominates a case on CPU, yet each engine holds its own weights and KV cache: keep a few.
CAPACITY = 3


class EnginePool:
    def __init__(self, model: ModelSpec, device: str) -> None:
        self.model = model
        self.device = device
        self._engines: OrderedDict[tuple, LLM] = OrderedDict()

    def engine_args(self, **overrides: Any) -> dict[str, Any]:
        m = self.model
        args = dict(dtype=m.dtype, device=self.device, mode="default", tensor_parallel_size=1, kernels={},
                    max_model_len=m.max_model_len, max_num_seqs=m.max_num_seqs,
                    max_num_batched_tokens=m.max_num_batched_tokens, block_size=m.block_size,
                    lm_head_fp32=m.lm_head_fp32, enable_prefix_caching=True, num_kv_blocks=None,
                    gpu_memory_utilization=m.gpu_memory_utilization)
        unknown = set(overrides) - set(args)
        if unknown:
            raise TypeError(f"unknown engine setting {sorted(unknown)[0]!r}")
        return {**args, **overrides}

    def get(self, **overrides: Any) -> LLM:
        args = self.engine_args(**overrides)
        key = tuple(sorted((k, repr(v)) for k, v in args.items()))
        if key in self._engines:
            self._engines.move_to_end(key)
            return self._engines[key]
        while len(self._engines) >= CAPACITY:
            self._engines.popitem(last=False)
        llm = self.fresh(**overrides)
        self._engines[key] = llm
        return llm

    def fresh(self, **overrides: Any) -> LLM:
        """A new engine nobody else has used (kept by no one)."""
        return LLM(self.model.id, **self.engine_args(**overrides))

