"""vllm: vLLM's OpenAI-compatible server, started and stopped by the harness (invariant: VLLM_BATCH_INVARIANT=1)."""
from __future__ import annotations

from bi_bench.harness.backends.openai_completions import OpenAICompletions


class VLLMServer(OpenAICompletions):
    name = "vllm"
    description = "vLLM's OpenAI-compatible server, started and stopped by the harness"
