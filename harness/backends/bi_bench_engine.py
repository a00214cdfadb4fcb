"""bi-bench: our own engine in-process, the reference and the default backend."""
from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any, get_args

from bi_bench.engine import LLM
from bi_bench.engine import ModelSource
from bi_bench.harness.backends.base import Backend, Capabilities, Capability, Setting
from bi_bench.harness.results.file import ModelRecord
from bi_bench.harness.run.model_info import model_record
from bi_bench.kernels.registry import MODES

if TYPE_CHECKING:
    from bi_bench.harness.run.pool import EnginePool


class BiBench(Backend):
    name = "bi-bench"
    description = "bi-bench's own paged-attention engine, in-process"
    capabilities = Capabilities(logprobs="processed", can=frozenset(get_args(Capability)),
                                settings=frozenset(get_args(Setting)), modes=MODES)

    def describe(self, pool: EnginePool) -> tuple[ModelSource, ModelRecord]:
        base = pool.get()
        return base.source, engine_record(base)

    def build(self, args: dict[str, Any]) -> LLM:
        return LLM(self.model_id, **args)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "version": importlib.metadata.version("bi-bench")}


def engine_record(llm: LLM) -> ModelRecord:
    return model_record(llm.source, llm.config.dtype, llm.num_parameters, llm.config.lm_head_fp32)
