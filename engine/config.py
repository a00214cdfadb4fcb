from __future__ import annotations

from dataclasses import dataclass, field

import torch

from bi_bench.kernels.registry import DEVICES

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
KV_CACHE_BUDGET_BYTES = 4 << 30  # CPU: a ceiling; pages are taken as blocks are first written


@dataclass
class EngineConfig:
    model: str
    dtype: str = "bfloat16"
    device: str = "cpu"
    mode: str = "default"
    enable_prefix_caching: bool = True
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    block_size: int = 16
    num_kv_blocks: int | None = None
    tensor_parallel_size: int = 1
    max_model_len: int = 4096
    kernels: dict[str, str] = field(default_factory=dict)
    lm_head_fp32: bool = False
    # CUDA only: the share of the GPU's memory the engine may fill (weights, activations, KV cache), and
    # whether decode steps run eagerly instead of replaying CUDA graphs.
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False

    @classmethod
    def default(cls, name: str) -> object:
        """The value `name` takes when left out: a suite that omits a setting gets the engine LLM(model) builds."""
        return cls.__dataclass_fields__[name].default

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.device not in DEVICES:
            raise ValueError(f"device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda': no CUDA device is available")
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size", "tensor_parallel_size", "max_model_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]
