"""CPU kernel variants; importing this package registers them."""
from bi_bench.kernels.cpu import attention, log_softmax, matmul, phase_attention, rmsnorm, row_attention  # noqa: F401
