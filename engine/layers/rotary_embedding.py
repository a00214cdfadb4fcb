from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig

from bi_bench.kernels import KernelVariant, batch_invariant_mode


def hf_reference(module_class: type[nn.Module], config: PretrainedConfig) -> nn.Module:
    """Hugging Face's rotary module, built inside batch_invariant_mode: its frequencies then come from the
    canonical pow (torch's own differs between CPU builds), as a trainer's model built in the mode does."""
    with batch_invariant_mode():
        return module_class(config)


class RotaryEmbedding(nn.Module):
    """RoPE with Hugging Face's frequencies (rope scaling included) and its fp32-then-cast arithmetic."""

    def __init__(self, reference: nn.Module, pointwise: KernelVariant, prefix: str = "") -> None:
        """`reference`: a Hugging Face rotary module; Gemma 3's holds one set per layer type, named `<type>_...`."""
        super().__init__()
        self.pointwise = pointwise
        # A plain attribute, not a buffer: model.to(bfloat16) must not round the frequencies.
        self.inv_freq = torch.Tensor(getattr(reference, f"{prefix}inv_freq")).float().clone()
        self.attention_scaling = float(getattr(reference, f"{prefix}attention_scaling"))

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """[T, 1, head_dim] each, computed once per step and shared by every layer."""
        freqs = positions[:, None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (self.pointwise.fn.cos(emb) * self.attention_scaling).to(dtype)[:, None, :]
        sin = (self.pointwise.fn.sin(emb) * self.attention_scaling).to(dtype)[:, None, :]
        return cos, sin

