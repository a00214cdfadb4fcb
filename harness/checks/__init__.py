"""The checks, one module each (its name is the check's): importing this package registers them all in CHECKS."""
import importlib
import pkgutil

from bi_bench.harness.checks.context import CaseContext, Skip
from bi_bench.harness.checks.registry import CHECKS, CheckParams, CheckSpec

NOT_CHECKS = ("context", "registry")
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in NOT_CHECKS:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CHECKS", "CaseContext", "CheckParams", "CheckSpec", "Skip"]
