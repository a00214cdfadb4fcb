"""Model classes by Hugging Face architecture name."""
from __future__ import annotations

from torch import nn

from bi_bench.engine.models.gemma3 import Gemma3ForCausalLM
from bi_bench.engine.models.llama import LlamaForCausalLM
from bi_bench.engine.models.qwen2 import Qwen2ForCausalLM
from bi_bench.engine.models.qwen3 import Qwen3ForCausalLM

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "Gemma3ForCausalLM": Gemma3ForCausalLM,
    "LlamaForCausalLM": LlamaForCausalLM,
    "Qwen2ForCausalLM": Qwen2ForCausalLM,
    "Qwen3ForCausalLM": Qwen3ForCausalLM,
}


class UnsupportedArchitecture(ValueError):
    pass


def model_class(architectures: list[str] | None) -> type[nn.Module]:
    for name in architectures or []:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    raise UnsupportedArchitecture(
        f"unsupported architecture {architectures}; supported: {', '.join(ARCHITECTURES)}")
