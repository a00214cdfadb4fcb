"""Suite file -> validated suite with typed check parameters; every problem is one `file:line: field: why`."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bi_bench.engine import DTYPES
from bi_bench.harness.checks import CHECKS, CheckParams
from bi_bench.harness.suite.schema import ModelSpec, Suite
from bi_bench.harness.suite.yaml_source import YamlSource
from bi_bench.kernels import KernelError, get
from bi_bench.kernels.registry import OPS

QUICK_MAX_TOKENS = 4
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class LoadedSuite:
    path: Path
    sha256: str  # of `text`'s UTF-8 bytes, as read
    text: str  # the suite file as it was read
    suite: Suite
    checks: dict[str, CheckParams]
    is_quick: bool = False

    def resolved(self) -> dict[str, Any]:
        """The suite as it runs: defaults filled in, overrides (device, --quick) applied."""
        config = self.suite.model_dump(mode="json")
        config["checks"] = {name: params.model_dump(mode="json") for name, params in self.checks.items()}
        return config

    def with_base_url(self, url: str) -> LoadedSuite:
        """Every openai model pointed at the server at `url`; ValueError when the suite has none."""
        def served(model: ModelSpec) -> bool:
            return model.backend is not None and model.backend.name == "openai"

        if not any(served(m) for m in self.suite.models):
            raise ValueError(f"--base-url: {self.path} has no model with backend openai")
        models = [m.model_copy(update={"backend": m.backend.model_copy(update={"base_url": url})}) if served(m) else m
                  for m in self.suite.models]
        return dataclasses.replace(self, suite=self.suite.model_copy(update={"models": models}))

    def quick(self) -> LoadedSuite:
        """One needle, one trial per setting, a few tokens, one throughput repeat."""
        s = self.suite
        update: dict[str, Any] = {
            "sampling": s.sampling.model_copy(update={"max_tokens": min(s.sampling.max_tokens, QUICK_MAX_TOKENS)}),
            "workload": s.workload.model_copy(update={"needles": 1}),
            "throughput": s.throughput.model_copy(update={"repeats": 1}),
        }
        checks = {name: p.model_copy(update={"trials": 1}) if "trials" in type(p).model_fields else p
                  for name, p in self.checks.items()}
        return LoadedSuite(self.path, self.sha256, self.text, s.model_copy(update=update), checks, is_quick=True)


def load_suite(path: Path, device: str | None = None, quick: bool = False, raw: bytes | None = None) -> LoadedSuite:
    """`raw`: the suite's text when it comes from a results file rather than from `path`."""
    source = YamlSource(path, raw)
    if not isinstance(source.data, dict):
        raise source.error((), f"a suite is a mapping of fields (name, models, checks, ...), "
                               f"not {type(source.data).__name__}")
    suite = _validated(source, Suite, source.data, ())
    if device is not None:
        suite = suite.model_copy(update={"device": device})
    checks = {name: _check_params(source, name, params) for name, params in suite.checks.items()}
    _check_kernels(source, suite)
    _check_backends(source, suite)
    _check_tp(source, suite, checks)
    _check_lengths(source, suite)
    loaded = LoadedSuite(path, hashlib.sha256(source.raw).hexdigest(), source.raw.decode("utf-8"), suite, checks)
    return loaded.quick() if quick else loaded


def _validated(source: YamlSource, model: type[ModelT], data: Any, prefix: tuple[Any, ...]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = prefix + tuple(part for part in error["loc"] if part != "[key]")
        got = error.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {str(got)[:40]!r})"
        raise source.error(loc, error["msg"] + shown) from None


def _check_params(source: YamlSource, name: str, params: dict | None) -> CheckParams:
    if name not in CHECKS:
        raise source.error(("checks", name), f"unknown check {name!r}; checks: {', '.join(CHECKS)}")
    return _validated(source, CHECKS[name].params, params or {}, ("checks", name))


def _check_kernels(source: YamlSource, suite: Suite) -> None:
    for mode, axes in suite.kernels.items():
        for op, names in axes.items():
            if op not in OPS:
                raise source.error(("kernels", mode, op), f"unknown op {op!r}; ops: {', '.join(OPS)}")
            for index, name in enumerate(names):
                loc = ("kernels", mode, op, index)
                try:
                    variant = get(op, name)
                except KernelError as exc:
                    raise source.error(loc, str(exc)) from None
                for model in suite.models:
                    if not variant.supports(suite.device, DTYPES[model.dtype]):
                        raise source.error(loc, f"{op} variant {name!r} does not run on {suite.device} "
                                                f"with {model.dtype} (model {model.id})")


def _check_backends(source: YamlSource, suite: Suite) -> None:
    from bi_bench.harness.backends import BACKENDS

    for index, model in enumerate(suite.models):
        if model.backend is not None and model.backend.name not in BACKENDS:
            raise source.error(("models", index, "backend", "name"), f"unknown backend {model.backend.name!r}; "
                                                                    f"backends: {', '.join(BACKENDS)}")


def _check_lengths(source: YamlSource, suite: Suite) -> None:
    """Catch a request that cannot fit before the run starts rather than mid-run."""
    for index, model in enumerate(suite.models):
        # Bound: prefix_cache's sibling prompt is a needle prefix plus another prompt, needles span >= 2 blocks,
        # and neighbours want up to twice the needle's tokens.
        prompt = 2 * max(suite.workload.longest_prompt, 2 * model.block_size + 2)
        longest = prompt + 2 * max(suite.sampling.max_tokens, suite.throughput.max_tokens)
        if longest > model.max_model_len:
            raise source.error(("models", index, "max_model_len"),
                               f"{model.max_model_len} is too short: requests may reach {longest} tokens "
                               f"(prompts up to {prompt}, then up to {longest - prompt} new tokens)")


def _check_tp(source: YamlSource, suite: Suite, checks: dict[str, CheckParams]) -> None:
    for name in checks:
        if CHECKS[name].needs_tp and all(degree == 1 for m in suite.models for degree in m.tp):
            raise source.error(("checks", name), f"check {name!r} compares TP>1 with TP=1, "
                                                 f"but no model lists a tp degree above 1")
