"""CPU kernel variants; importing this package registers them."""
from bi_bench.kernels.cpu import (  # noqa: F401
    attention, log_softmax, matmul, phase_attention, pointwise, rmsnorm, row_attention)
