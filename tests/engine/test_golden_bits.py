"""Every machine that runs the tests computes the committed golden bits: invariant mode's outputs are a function
of the weights, the requests and the code, not of the CPU (CI runs on varied CPUs)."""
from __future__ import annotations

import pytest

from golden import GOLDEN, digest


@pytest.mark.slow
@pytest.mark.parametrize("dtype", list(GOLDEN))
def test_invariant_smollm2_reproduces_the_golden_bits(dtype: str) -> None:
    assert digest(dtype) == GOLDEN[dtype], f"{dtype}: this machine computes other bits than the committed ones"
