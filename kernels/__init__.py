"""Kernel variants per op (matmul, rmsnorm, attention, log_softmax, all_reduce) and their invariance claims."""
if __name__ != "bi_bench.kernels":  # imported as the top-level `kernels` from the repository root
    from .handover import hand_over

    hand_over(__name__)
else:
    from bi_bench.kernels.attention_metadata import AttentionMetadata
    from bi_bench.kernels.registry import KernelError, KernelVariant, get, register, select, variants
    from bi_bench.kernels.invariant_mode import batch_invariant_mode  # registers attn_implementation="bi_bench"

    __all__ = ["AttentionMetadata", "KernelError", "KernelVariant", "batch_invariant_mode", "get", "register",
               "select", "variants"]
