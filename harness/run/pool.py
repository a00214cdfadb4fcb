"""Engines for one model, built by its backend on demand and kept for the next case that wants the same settings."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from bi_bench.harness.backends import Backend, Engine, NotApplicable, backend_for
from bi_bench.harness.backends.base import SERVER_SETTINGS
from bi_bench.harness.suite.schema import ModelSpec

# Loading weights dominates a case on CPU, yet each engine holds its own weights and KV cache: keep a few.
CAPACITY = 3
CASE_SETTINGS = {"mode": "default", "tensor_parallel_size": 1, "kernels": {}}  # what each case sets itself


class EnginePool:
    def __init__(self, model: ModelSpec, device: str, backend: Backend | None = None) -> None:
        self.model = model
        self.device = device
        self.backend = backend or backend_for(model.backend, model.id, device)
        self._engines: OrderedDict[tuple, Engine] = OrderedDict()

    def engine_args(self, **overrides: Any) -> dict[str, Any]:
        m = self.model
        args = dict(dtype=m.dtype, device=self.device, **CASE_SETTINGS,
                    max_model_len=m.max_model_len, max_num_seqs=m.max_num_seqs,
                    max_num_batched_tokens=m.max_num_batched_tokens, block_size=m.block_size,
                    lm_head_fp32=m.lm_head_fp32, enable_prefix_caching=True, num_kv_blocks=None,
                    gpu_memory_utilization=m.gpu_memory_utilization)
        unknown = set(overrides) - set(args) - set(SERVER_SETTINGS)
        if unknown:
            raise TypeError(f"unknown engine setting {sorted(unknown)[0]!r}")
        return {**args, **overrides}

    def get(self, **overrides: Any) -> Engine:
        args = self.engine_args(**overrides)
        key = tuple(sorted((k, repr(v)) for k, v in args.items()))
        if key in self._engines:
            self._engines.move_to_end(key)
            return self._engines[key]
        while len(self._engines) >= CAPACITY:
            self._engines.popitem(last=False)  # closed once nobody holds it: a check or timing loop may still
        engine = self.fresh(**overrides)
        self._engines[key] = engine
        return engine

    def fresh(self, **overrides: Any) -> Engine:
        """A new engine nobody else has used (kept by no one)."""
        args = self.engine_args(**overrides)
        self._check_supported(args)
        return self.backend.build(args)

    def close(self) -> None:
        while self._engines:
            self._engines.popitem()[1].close()

    def why_not(self, args: dict[str, Any]) -> str | None:
        """Why the backend cannot build an engine with `args`; None when it can."""
        try:
            self._check_supported(args)
        except NotApplicable as exc:
            return f"not_applicable: {exc}"
        return None

    def _check_supported(self, args: dict[str, Any]) -> None:
        modes = self.backend.modes
        if args["mode"] not in modes:
            raise NotApplicable(f"backend {self.backend.name} runs no mode {args['mode']!r} here "
                                f"(modes: {', '.join(modes)})")
        defaults = self.engine_args()
        varied = [key for key, value in args.items() if key != "mode" and value != defaults.get(key)]
        lacking = self.backend.lacking(varied)
        if lacking:
            raise NotApplicable(lacking)
