"""Triton (GPU) kernel variants; importing this package registers them, or nothing when triton is missing."""
try:
    import triton
except ImportError:
    triton = None

if triton is not None:
    from bi_bench.kernels.triton import attention, log_softmax, matmul, rmsnorm  # noqa: F401
