"""Default mode's picks where benchmarks/decode_kernels.py timed every candidate at smollm2's decode shapes
(docs/performance.md): the fastest variant per op on a CPU class, whoever wrote it. Elsewhere default mode keeps
the library paths (F.linear, oneDNN's packed path on native-bf16 CPUs, torch's RMSNorm)."""
from __future__ import annotations

import math

import torch

from bi_bench.kernels.cpu.isa import cpu_flags, isa_class

CPU_CLASS = isa_class(cpu_flags())
# linears: per dtype, the variant whose step (all five linear kinds) was fastest below each row count. On an
# Intel Xeon with AMX (2026-12-06, after our GEMM took several panels per tile at few rows): fp32, ours at one
# row (17.8 against MKL's F.linear 18.6 ms), F.linear from 2 rows (it was the faster at one row before, 19.7
# against 22.0, and rows 2 to 7 were not timed again), a tie at 8 (34.4 against 34.9) where ours stays the pick,
# as it was from 8 rows on (80.1 against 82.4 at 64), oneDNN's packed path slowest throughout; bf16, ours at one
# row (11.2 against oneDNN's 15.3) and oneDNN's AMX path from 8 rows on (1.2x faster at 8, 2.7-5x at 64).
MEASURED_FASTEST: dict[tuple[str, torch.dtype], tuple[tuple[float, str], ...]] = {
    ("amx", torch.float32): ((2, "cpu_canonical"), (8, "torch"), (math.inf, "cpu_canonical")),
    ("amx", torch.bfloat16): ((8, "cpu_canonical"), (math.inf, "onednn_packed")),
}
# Whether this CPU's class was measured: there default mode takes matmul cpu_fastest instead of the library
# paths, and rmsnorm cpu_halving (its one C++ call beat torch's ops 2-7x at 1 to 64 rows).
MEASURED_HERE = CPU_CLASS in {cpu_class for cpu_class, _ in MEASURED_FASTEST}
