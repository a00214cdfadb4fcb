"""The checks, one module each; importing this package registers them all in CHECKS."""
from bi_bench.harness.checks import (  # noqa: F401  (each registers itself)
    batch_size,
    chunked_prefill,
    order,
    preemption,
    prefill_decode,
    prefix_cache,
    repeat,
    threads,
    tp,
    trainer_parity,
    unique_completions,
)
from bi_bench.harness.checks.context import CaseContext, Skip
from bi_bench.harness.checks.registry import CHECKS, CheckParams, CheckSpec

__all__ = ["CHECKS", "CaseContext", "CheckParams", "CheckSpec", "Skip"]
