"""Default mode's picks where benchmarks/decode_kernels.py timed every candidate at smollm2's decode shapes
(docs/performance.md): the fastest variant per op on a CPU class, whoever wrote it. Elsewhere default mode keeps
the library paths (F.linear, oneDNN's packed path on native-bf16 CPUs, torch's RMSNorm)."""
from __future__ import annotations

import math

import torch

from bi_bench.kernels.cpu.isa import cpu_flags, isa_class

CPU_CLASS = isa_class(cpu_flags())
# linears: per dtype, the variant whose step (all five linear kinds) was fastest below each row count. On an
# Intel Xeon with AMX: fp32, ours at one row (17.8 against MKL's F.linear 18.6 ms, since our GEMM takes several
# panels per tile at few rows; 2026-12-06), F.linear from 2 to 7 rows, ours from 8 (36.1 against 39.4 ms at 8,
# even at 32, 80.1 against 82.4 at 64), oneDNN's packed path slowest throughout; bf16, ours at one row and
# oneDNN's AMX path from 8 rows on (1.2x faster at 8, 2.7-5x at 64). Default mode's fp32 decode at one row then
# runs invariant mode's linears; its controls diverge where they meet 2-7 rows (suites/tiny.yaml).
# On an AMD EPYC with AVX-512 and avx512_bf16, no AMX (2026-12-07; ms per step's linears): fp32 ours at every row
# count (1: 14.5 against oneDNN's packed 20.7 and F.linear's 34.2; 4: 15.5, 25.8, 49.2; 64: 44.9, 60.1, 116.2), yet
# default mode takes F.linear from 2 to 7 rows, as on the AMX class, so that it still varies with the batch: with
# oneDNN's there the batch_size and unique_completions controls of suites/tiny.yaml came out bitwise equal. bf16:
# ours at every row count since our GEMM takes vdpbf16ps at every row count on this class (1: 8.2 against
# oneDNN's 10.9; 8: 11.6 against 12.2; 64: 26.3 against 28.2); no suite runs our engine in bf16 on a CPU, so default
# mode's bf16 linears need not vary with the batch to keep a control.
MEASURED_FASTEST: dict[tuple[str, torch.dtype], tuple[tuple[float, str], ...]] = {
    ("amx", torch.float32): ((2, "cpu_canonical"), (8, "torch"), (math.inf, "cpu_canonical")),
    ("amx", torch.bfloat16): ((8, "cpu_canonical"), (math.inf, "onednn_packed")),
    ("avx512bf16", torch.float32): ((2, "cpu_canonical"), (8, "torch"), (math.inf, "cpu_canonical")),
    ("avx512bf16", torch.bfloat16): ((math.inf, "cpu_canonical"),),
}
# Whether this CPU's class was measured: there default mode takes matmul cpu_fastest instead of the library
# paths, and rmsnorm cpu_halving (its one C++ call beat torch's ops 2-7x at 1 to 64 rows on both classes).
MEASURED_HERE = CPU_CLASS in {cpu_class for cpu_class, _ in MEASURED_FASTEST}
