"""Results files in, each validated as `bi-bench validate` does before anything of it is shown: runs grouped
by model and engine, rejected files with their reasons."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bi_bench.harness.results.file import ResultsFile, load_results, read_json, slug
from bi_bench.harness.results.reproduction import INFIX, ReproductionFile, is_reproduction
from bi_bench.harness.suite.schema import model_label
from bi_bench.harness.verify.validate import problems_of, validate_file



@dataclass(frozen=True)
class Reproduction:
    source: Path
    file: ReproductionFile
    href: str  # its copy, relative to the site root, beside the run page


@dataclass
class Run:
    source: Path
    results: ResultsFile
    page: str  # the run page, relative to the site root; its JSON and CSV lie beside it
    reproductions: list[Reproduction] = field(default_factory=list)  # valid ones

    @property
    def model_key(self) -> str:
        backend = self.results.backend
        return slug(model_label(self.results.model.id, self.results.model.dtype, backend.label if backend else None))

    @property
    def stem(self) -> str:
        return self.page.removesuffix(".html")

    @property
    def reproduced_on(self) -> list[Reproduction]:
        """Passing reproductions made on hardware other than the run's own."""
        return [r for r in self.reproductions
                if r.file.reproduced and r.file.environment.hardware != self.results.environment.hardware]


@dataclass
class Model:
    key: str
    runs: list[Run]  # newest first

    @property
    def page(self) -> str:
        return f"models/{self.key}.html"

    @property
    def validated_runs(self) -> list[Run]:
        return [run for run in self.runs if run.results.summary.validated]

    @property
    def featured(self) -> Run:
        """The run the leaderboard row and the per-run figures show: the newest validated one, else the newest."""
        return (self.validated_runs or self.runs)[0]

    @property
    def synthetic(self) -> bool:
        return self.featured.results.model.synthetic_weights


@dataclass(frozen=True)
class Rejected:
    path: str  # relative to the results folder
    reason: str  # the first problem validate names, and how many more there are


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def load_all(results_dir: Path) -> Loaded:
    loaded = Loaded()
    paths = sorted(results_dir.rglob("*.json"))
    for path in (p for p in paths if not is_reproduction(p)):
        results, problems = validated_results(path)
        if problems:
            loaded.rejected.append(rejected(results_dir, path, problems))
            continue
        relative = path.relative_to(results_dir).with_suffix("")
        loaded.runs.append(Run(path, results, "runs/" + "/".join(slug(part) for part in relative.parts) + ".html"))
    runs = {run.source: run for run in loaded.runs}
    for path in (p for p in paths if is_reproduction(p)):
        try:
            problems = validate_file(path)
        except (OSError, ValueError) as exc:
            problems = [unreadable(path, exc)]
        if problems:
            loaded.rejected.append(rejected(results_dir, path, problems))
        else:
            attach(path, runs)
    return loaded


def validated_results(path: Path) -> tuple[ResultsFile | None, list[str]]:
    try:
        results = load_results(path)
    except (OSError, ValueError) as exc:
        return None, [unreadable(path, exc)]
    return results, problems_of(results)


def unreadable(path: Path, exc: Exception) -> str:
    return str(exc).removeprefix(f"{path}: ")


def attach(path: Path, runs: dict[Path, Run]) -> None:
    """A valid reproduction joins the run of the results file it names (valid too, so loaded)."""
    file = ReproductionFile.model_validate(read_json(path))
    run = runs[path.with_name(file.results_file)]
    run.reproductions.append(Reproduction(path, file, f"{run.stem}{INFIX}{slug(file.environment.hardware)}.json"))


def rejected(results_dir: Path, path: Path, problems: list[str]) -> Rejected:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Rejected(str(path.relative_to(results_dir)), problems[0] + more)


def group_models(runs: list[Run]) -> list[Model]:
    models: dict[str, Model] = {}
    for run in sorted(runs, key=lambda r: r.results.finished_at, reverse=True):
        models.setdefault(run.model_key, Model(run.model_key, [])).runs.append(run)
    return sorted(models.values(), key=lambda m: m.key)
