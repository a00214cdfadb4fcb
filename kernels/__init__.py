"""Kernel variants per op (matmul, rmsnorm, attention, log_softmax, all_reduce) and their invariance claims."""
# Run from the repository root, this folder is also importable as a top-level `kernels`, and transformers
# imports that name to probe for Hugging Face's `kernels` package; as that stranger it must define nothing.
if __name__ == "bi_bench.kernels":
    from bi_bench.kernels.attention_metadata import AttentionMetadata
    from bi_bench.kernels.registry import KernelError, KernelVariant, get, register, select, variants
    from bi_bench.kernels.invariant_mode import batch_invariant_mode  # registers attn_implementation="bi_bench"

    __all__ = ["AttentionMetadata", "KernelError", "KernelVariant", "batch_invariant_mode", "get", "register",
               "select", "variants"]
