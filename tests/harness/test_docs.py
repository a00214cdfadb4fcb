"""docs/suites.md's table of checks is the registry's: every check, each with its control flag."""
from __future__ import annotations

import re
from pathlib import Path

from bi_bench.harness.checks import CHECKS

SUITES_DOC = Path(__file__).resolve().parents[2] / "docs" / "suites.md"


def test_the_checks_table_lists_every_registered_check_with_its_control_flag() -> None:
    rows = re.findall(r"^\| `(\w+)` \| .* \| (yes|no) \|$", SUITES_DOC.read_text(), re.M)
    assert dict(rows) == {name: "yes" if spec.control else "no" for name, spec in CHECKS.items()}
