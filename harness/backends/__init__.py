"""Engines under test, one module each, behind one small interface (base.Backend): the harness runs every check
through it. bi-bench's own engine is the default; transformers runs an unmodified Hugging Face model in-process;
openai talks to any OpenAI-compatible completions server; vllm starts and stops vLLM's server itself."""
from __future__ import annotations

from bi_bench.harness.backends.base import (CAPABILITIES, Backend, Capabilities, Completion, Engine, EngineError,
                                            NotApplicable)
from bi_bench.harness.backends.bi_bench_engine import BiBench
from bi_bench.harness.backends.huggingface import Transformers
from bi_bench.harness.backends.openai_completions import OpenAICompletions
from bi_bench.harness.backends.vllm_server import VLLMServer
from bi_bench.harness.suite.schema import BackendSpec

BACKENDS: dict[str, type[Backend]] = {kind.name: kind for kind in (BiBench, Transformers, OpenAICompletions,
                                                                    VLLMServer)}


def backend_for(spec: BackendSpec | None, model_id: str, device: str) -> Backend:
    spec = spec or BackendSpec()
    return BACKENDS[spec.name].from_spec(spec, model_id, device)


__all__ = ["BACKENDS", "CAPABILITIES", "Backend", "Capabilities", "Completion", "Engine", "EngineError",
           "NotApplicable", "backend_for"]
