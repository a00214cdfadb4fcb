"""The summary figures of a results file, from its cases alone."""
from __future__ import annotations

from bi_bench.harness.results.file import CaseResult, Summary
from bi_bench.harness.results.metrics import NOT_RUN, VERDICTS


# Counted only where they occur, so files written before these verdicts existed recompute to their own summary.
ADDED_LATER = ("not_applicable", "engine_error")


def summarize(cases: list[CaseResult], synthetic_weights: bool, complete: bool) -> Summary:
    """`complete`: the file holds every case of its suite (not one shard of it)."""
    counts = {v: sum(c.verdict == v for c in cases) for v in VERDICTS}
    verdicts = {v: n for v, n in counts.items() if n or v not in ADDED_LATER}
    controls = [c for c in cases if c.is_control and c.verdict not in NOT_RUN]
    diverged = sum(c.verdict == "diverged" for c in controls)
    # With no diverging control nothing shows the checks could fail; a shard may simply hold no controls.
    none_diverged = diverged == 0
    failed = counts["fail"] + counts["engine_error"]  # an engine that crashed under a check failed it
    ok = failed == 0 and diverged == len(controls) and not (none_diverged and complete)
    summary = Summary(cases=len(cases), verdicts=verdicts, claims=verdicts["pass"] + verdicts["fail"],
                      claims_held=verdicts["pass"], controls=len(controls), controls_diverged=diverged,
                      no_control_diverged=none_diverged, ok=ok, validated=False)
    validated = not synthetic_weights and not shortfalls(summary, complete)
    return summary.model_copy(update={"validated": validated})


def shortfalls(summary: Summary, complete: bool) -> list[str]:
    """The validation rule, as the reasons a file is not validated (none: it is, unless its weights are synthetic,
    which every page marks on its own): every claim held, every control diverged, at least one did, every case of
    the suite is present and ran, and at least one claim held."""
    count = summary.verdicts.get
    reasons = [
        (count("fail", 0) > 0, f"failed claims: {count('fail', 0)}"),
        (count("engine_error", 0) > 0, f"engine errors: {count('engine_error', 0)}"),
        (summary.controls_diverged < summary.controls,
         f"controls diverged: {summary.controls_diverged}/{summary.controls}"),
        (summary.no_control_diverged, "no control diverged"),
        (not complete, "one shard"),
        (count("skipped", 0) > 0, f"skipped cases: {count('skipped', 0)}"),
        (count("not_applicable", 0) > 0, f"not applicable: {count('not_applicable', 0)}"),
        (summary.claims_held == 0, "no claim held"),
    ]
    return [text for applies, text in reasons if applies]
