"""Kernel variants per op (matmul, rmsnorm, attention, log_softmax, all_reduce) and their invariance claims."""
from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.registry import KernelError, KernelVariant, get, register, select, variants

__all__ = ["AttentionMetadata", "KernelError", "KernelVariant", "get", "register", "select", "variants"]
