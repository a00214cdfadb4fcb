"""Metrics and verdicts, computed from observations only (the run and `validate` share this code)."""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal, get_args

from bi_bench.harness.results.base import Record
from bi_bench.harness.results.observations import Group, Observation
from bi_bench.kernels.registry import INVARIANT_MODES

Verdict = Literal["pass", "fail", "diverged", "equal", "skipped", "not_applicable", "engine_error"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
# Verdicts of cases that recorded no observations: skipped here, a capability the backend lacks, the engine failed.
NOT_RUN = ("skipped", "not_applicable", "engine_error")


@dataclass(frozen=True)
class VerdictStyle:
    text: str  # the site's badge text colour
    background: str  # the site's badge background
    fill: str  # the site's verdict-grid cell
    terminal: str  # the CLI report's rich style


VERDICT_STYLES: dict[Verdict, VerdictStyle] = {
    "pass": VerdictStyle("#1a7f37", "#dafbe1", "#1a7f37", "green"),
    "fail": VerdictStyle("#cf222e", "#ffebe9", "#cf222e", "bold red"),
    "diverged": VerdictStyle("#9a6700", "#fff8c5", "#bf8700", "yellow"),
    "equal": VerdictStyle("#0969da", "#ddf4ff", "#0969da", "cyan"),
    "skipped": VerdictStyle("#59636e", "#eaeef2", "#afb8c1", "dim"),
    "not_applicable": VerdictStyle("#59636e", "#eaeef2", "#d0d7de", "dim"),
    "engine_error": VerdictStyle("#ffffff", "#cf222e", "#82071e", "bold red"),
}


class Metrics(Record):
    bitwise_equal: bool  # every candidate's token ids and logprobs equal the reference's, bit for bit
    trials: int  # candidates compared
    mismatching_tokens: int  # positions whose token differs (or exists on one side only), summed over trials
    first_divergence: int | None  # earliest token position where a token or logprob differs
    first_divergence_at: str | None  # label of the candidate that diverged there first
    max_abs_dlogprob: float  # over positions where the tokens so far agree and both logprobs are finite
    kl_estimate: float  # mean of reference minus candidate logprob there: a sampled estimate of KL(ref || cand)
    distinct_completions: int  # most distinct token sequences among one needle's runs
    # Largest |processed - raw| reference logprob, where raw ones were kept: what returning raw logprobs to a
    # trainer that applies the sampling transforms would cost.
    max_abs_raw_vs_processed: float | None = None
    # Agreeing positions where one side's logprob is -inf: the token lies outside that side's top-k/top-p set.
    outside_support: int = 0


@dataclass(frozen=True)
class Comparison:
    first_divergence: int | None
    mismatching_tokens: int
    dlogprobs: list[float]  # reference minus candidate, over the agreeing token prefix, where both are finite
    outside_support: int  # positions of that prefix where exactly one side is finite


def same_bits(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


def compare(reference: Observation, candidate: Observation) -> Comparison:
    ref_tokens, cand_tokens = reference.token_ids, candidate.token_ids
    shared = min(len(ref_tokens), len(cand_tokens))
    mismatching = sum(a != b for a, b in zip(ref_tokens, cand_tokens)) + abs(len(ref_tokens) - len(cand_tokens))
    first = None
    dlogprobs: list[float] = []
    outside = 0
    for i in range(shared):
        if ref_tokens[i] != cand_tokens[i]:
            first = i if first is None else first
            break
        a, b = reference.logprobs[i], candidate.logprobs[i]
        if math.isfinite(a) == math.isfinite(b):
            dlogprobs.append(0.0 if same_bits(a, b) else a - b)
        else:
            outside += 1
        if first is None and not same_bits(a, b):
            first = i
    if first is None and len(ref_tokens) != len(cand_tokens):
        first = shared
    return Comparison(first, mismatching, dlogprobs, outside)


def case_metrics(groups: list[Group]) -> Metrics:
    comparisons = [(c.label, compare(g.reference, c.observation)) for g in groups for c in g.candidates]
    diverged = [(cmp.first_divergence, label) for label, cmp in comparisons if cmp.first_divergence is not None]
    first, first_at = min(diverged, key=lambda item: item[0]) if diverged else (None, None)
    dlogprobs = [d for _, cmp in comparisons for d in cmp.dlogprobs]
    return Metrics(
        bitwise_equal=not diverged,
        trials=len(comparisons),
        mismatching_tokens=sum(cmp.mismatching_tokens for _, cmp in comparisons),
        first_divergence=first,
        first_divergence_at=first_at,
        max_abs_dlogprob=max((abs(d) for d in dlogprobs), default=0.0),
        kl_estimate=sum(dlogprobs) / len(dlogprobs) if dlogprobs else 0.0,
        distinct_completions=max(_distinct(g) for g in groups),
        max_abs_raw_vs_processed=_raw_vs_processed(groups),
        outside_support=sum(cmp.outside_support for _, cmp in comparisons),
    )


def _raw_vs_processed(groups: list[Group]) -> float | None:
    pairs = [(raw, processed) for g in groups if g.reference_raw_logprobs is not None
             for raw, processed in zip(g.reference_raw_logprobs, g.reference.logprobs)]
    return max((abs(raw - processed) for raw, processed in pairs), default=0.0) if pairs else None


def _distinct(group: Group) -> int:
    runs = [group.reference] + [c.observation for c in group.candidates]
    return len({tuple(run.token_ids) for run in runs})


def verdict(metrics: Metrics, claims_invariance: bool) -> Verdict:
    if claims_invariance:
        return "pass" if metrics.bitwise_equal else "fail"
    return "equal" if metrics.bitwise_equal else "diverged"


def claims_invariance(mode: str, claim_modes: tuple[str, ...] = INVARIANT_MODES) -> bool:
    """Whether an engine in `mode` claims invariance for a check claimed in `claim_modes`."""
    return mode in claim_modes
