"""The journal beside a results file being made: one JSON line per finished case, so a run can resume.

Line one is the header naming the run; then `{"case": ...}` and `{"throughput": ...}` lines. Each line is
flushed to disk before the next case starts; a torn last line (a crash mid-write) is ignored on reading.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from bi_bench.harness.results.base import Record
from bi_bench.harness.results.file import CaseResult, Throughput


class JournalHeader(Record):
    run_id: str
    started_at: str
    suite_sha256: str
    shard: str | None
    quick: bool
    device: str
    model: str
    dtype: str


@dataclass
class JournalContents:
    header: JournalHeader
    cases: dict[str, CaseResult] = field(default_factory=dict)  # by case id
    throughput: Throughput | None = None


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, path: Path, header: JournalHeader) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        journal = cls(path)
        journal._append({"header": header.model_dump()})
        return journal

    def add_case(self, case: CaseResult) -> None:
        self._append({"case": case.model_dump()})

    def add_throughput(self, throughput: Throughput) -> None:
        self._append({"throughput": throughput.model_dump()})

    def _append(self, entry: dict) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> JournalContents | None:
        """What the journal holds, or None when it has no readable header."""
        contents = None
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
                if contents is None:
                    contents = JournalContents(JournalHeader.model_validate(entry["header"]))
                elif "case" in entry:
                    case = CaseResult.model_validate(entry["case"])
                    contents.cases[case.id] = case
                else:
                    contents.throughput = Throughput.model_validate(entry["throughput"])
            except (ValueError, KeyError, TypeError):  # JSON or schema errors: a torn last line
                break
        return contents
