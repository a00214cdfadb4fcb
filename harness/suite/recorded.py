"""The suite a results file records, loaded again from the text the file carries: the cases the file must hold."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from bi_bench.harness.results.file import ResultsFile
from bi_bench.harness.results.observations import sha256
from bi_bench.harness.suite.load import LoadedSuite, load_suite
from bi_bench.harness.suite.matrix import CaseSpec, Shard, expand
from bi_bench.harness.suite.schema import Device, ModelSpec


@dataclass(frozen=True)
class RecordedSuite:
    loaded: LoadedSuite  # as it ran: the recorded device, --quick and --base-url applied
    model: ModelSpec  # the suite's entry for the file's model
    cases: list[CaseSpec]  # the file's share of the matrix: all of it, or its shards' cases


def recorded_suite(results: ResultsFile) -> RecordedSuite:
    """ValueError naming the field when the recorded suite cannot be loaded or does not name the file's model."""
    suite = results.suite
    raw = suite.source.encode("utf-8")
    if sha256(raw) != suite.sha256:
        raise ValueError(f"suite.sha256: {suite.sha256!r} is not the sha256 of suite.source ({sha256(raw)})")
    device = suite.config.get("device")
    if device not in get_args(Device):
        raise ValueError(f"suite.config.device: {device!r} is not one of {', '.join(get_args(Device))}")
    try:
        loaded = load_suite(Path(suite.path), device, suite.quick, raw=raw)
    except ValueError as exc:
        raise ValueError(f"suite.source: {exc}") from None
    backend = results.backend
    if backend is not None and backend.name == "openai" and backend.base_url:  # as --base-url pointed it
        loaded = loaded.with_base_url(backend.base_url)
    label = backend.label if backend is not None else None
    model = next((m for m in loaded.suite.models if (m.id, m.dtype) == (results.model.id, results.model.dtype)
                  and (m.backend.label if m.backend else None) == label), None)
    if model is None:
        raise ValueError(f"model: {results.model.id!r} in {results.model.dtype} is not a model of suite.source")
    return RecordedSuite(loaded, model, _share(expand(loaded, model), suite.shard))


def _share(cases: list[CaseSpec], label: str | None) -> list[CaseSpec]:
    """The cases of shard label "I/N" or "I,J/N" (None: every case), in matrix order."""
    if label is None:
        return cases
    return Shard.parse(label).cases(cases)
