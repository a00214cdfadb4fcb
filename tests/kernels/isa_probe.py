"""Prints digests of every canonical CPU kernel's outputs on fixed inputs (and, with --engine, of the golden
requests), so that two processes with other builds or ATEN_CPU_CAPABILITY can be compared bit for bit."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from bi_bench.engine.loader import uniform_weights
from bi_bench.kernels.cpu import pointwise
from bi_bench.kernels.cpu.extension import extension
from bi_bench.kernels.cpu.matmul import canonical_mm


def uniform(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Inputs from torch.rand (exact bit moves in every build: torch.randn is not)."""
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * scale


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def op_digests() -> dict[str, str]:
    digests = {}
    for dtype in (torch.float32, torch.bfloat16):
        for n, k in ((576, 1536), (1536, 576), (192, 576), (331, 197)):
            x, w = uniform(77, k, seed=n).to(dtype), uniform(n, k, seed=k).to(dtype)
            digests[f"matmul_{dtype}_{n}x{k}"] = sha(canonical_mm(x, w))
    x = uniform(33, 4099, seed=1, scale=30.0)
    for name in ("exp", "log", "silu", "gelu_tanh", "cos", "sin"):
        digests[name] = sha(getattr(pointwise, name)(x.abs() if name == "log" else x))
    digests["pow_scalar"] = sha(pointwise.pow_scalar(10000.0, torch.arange(0, 128, 2).float() / 128))
    digests["log_softmax"] = sha(extension().log_softmax(x))
    digests["greedy"] = sha(torch.cat([t.float() for t in extension().greedy(x)]))
    digests["cumsum"] = sha(pointwise.cumsum_last(x))
    digests["random_weights"] = sha(uniform_weights(torch.Size([10_000]), 0.03, torch.Generator().manual_seed(5)))
    return digests


def main() -> None:
    report = {"isa": extension().matmul_isa(), "capability": torch.backends.cpu.get_cpu_capability(),
              "ops": op_digests()}
    if "--engine" in sys.argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))
        from golden import GOLDEN, digest

        report["engine"] = {dtype: digest(dtype) for dtype in GOLDEN}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
