"""What the harness needs of an engine under test, and what each engine says it can do.

A check runs through an `Engine`: generate token-id prompts under per-prompt sampling parameters and return, per
prompt, its token ids and one logprob per token (processed or raw, as the backend declares). Everything else is
a declared capability; a check that needs one the backend lacks is recorded `not_applicable`, never passed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Literal, Protocol, Sequence, get_args

from bi_bench.engine import SamplingParams
from bi_bench.engine import ModelSource, resolve
from bi_bench.engine import torch_threads
from bi_bench.harness.results.file import ModelRecord
from bi_bench.harness.run.model_info import model_record, stored_parameters
from bi_bench.harness.suite.schema import BackendSpec

if TYPE_CHECKING:
    from bi_bench.harness.run.pool import EnginePool

CAPABILITIES = {  # what a backend can (or cannot) do
    "score": "score given completion tokens (prompt logprobs)",
    "reset_prefix_cache": "empty its prefix cache between runs",
    "threads": "run the same engine at another CPU thread count",
    "seed": "take a seed per request, so a request's draws do not depend on its neighbours",
    "batch": "put the needle and its neighbours in one batch the harness composes",
    "preemptions": "count the requests it preempted",
    "trainer": "have its logprobs recomputed by an unmodified Hugging Face model of the same weights",
}
Capability = Literal["score", "reset_prefix_cache", "threads", "seed", "batch", "preemptions", "trainer"]
# engine settings a check varies (each its own engine): model-wide ones come from the suite's model entry
Setting = Literal["enable_prefix_caching", "max_num_batched_tokens", "num_kv_blocks", "tensor_parallel_size",
                  "kernels"]
ServerSetting = Literal["cpu_threads"]  # only servers read it: absent from engine arguments unless a check sets it
SERVER_SETTINGS = get_args(ServerSetting)


class EngineError(Exception):
    """The engine under test failed: crashed, died, answered nonsense. The message is its own first error line;
    the case's verdict is `engine_error`, and the run goes on with the other cases."""


class NotApplicable(Exception):
    """The backend cannot do what the check needs; the message says what. The verdict is `not_applicable`."""


class Output(Protocol):
    token_ids: Sequence[int]
    logprobs: Sequence[float]


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    raw_logprobs: list[float] | None = None  # where the engine returns both kinds


class Engine(Protocol):
    """One engine instance with fixed settings (bi_bench.engine.LLM is one as it is)."""

    @property
    def kernels(self) -> dict[str, str]: ...

    def generate(self, prompts: list[list[int]], sampling_params: list[SamplingParams]) -> Sequence[Output]: ...

    def score(self, prompts: list[list[int]], completions: list[list[int]],
              sampling_params: SamplingParams) -> Sequence[Output]: ...

    def reset_prefix_cache(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    logprobs: Literal["processed", "raw"]  # which logprobs generate returns
    can: frozenset[Capability]
    settings: frozenset[Setting | ServerSetting]
    modes: tuple[str, ...]  # the modes the backend can run


@dataclass
class Backend(ABC):
    """One engine under test, for one model of a suite: builds its engines with the settings a case asks for."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    description: ClassVar[str]
    model_id: str
    device: str
    spec: BackendSpec

    @classmethod
    def from_spec(cls, spec: BackendSpec, model_id: str, device: str) -> Backend:
        """ValueError naming the field when the suite's backend entry cannot work."""
        return cls(model_id, device, spec)

    def source(self) -> ModelSource:
        """The model's config, tokenizer and weights, as bi-bench loads them (prompts and the model record)."""
        return resolve(self.model_id)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.capabilities.modes

    @property
    def uniform_batches(self) -> bool:
        """Whether a batch takes one set of sampling parameters (one request of many prompts): then the needle's
        neighbours run under the needle's."""
        return False

    def describe(self, pool: EnginePool) -> tuple[ModelSource, ModelRecord]:
        """The model as loaded for prompts, and as results record it."""
        source = self.source()
        return source, model_record(source, pool.model.dtype, stored_parameters(source), pool.model.lm_head_fp32)

    @abstractmethod
    def build(self, args: dict[str, Any]) -> Engine:
        """An engine with `args`: mode, tensor_parallel_size, kernels and the model's engine settings."""

    @contextmanager
    def threads(self, count: int) -> Iterator[dict[str, Any]]:
        """Runs its body at `count` CPU threads; yields the settings of an engine at that count. In-process
        backends yield none: torch's thread count is the process's, so the engine already built takes it."""
        if "threads" not in self.capabilities.can:
            raise NotApplicable(f"backend {self.name}: {CAPABILITIES['threads']}: not available")
        with torch_threads(count):
            yield {}

    def record(self) -> dict[str, Any]:
        """What results record of the backend: its version, how it was started, what it reported."""
        return {"name": self.name}

    def lacking(self, needs: Sequence[str]) -> str | None:
        """Why this backend cannot run a check that needs `needs` (capabilities and settings); None when it can."""
        have = self.capabilities.can | self.capabilities.settings
        missing = [need for need in needs if need not in have]
        if not missing:
            return None
        return f"backend {self.name} cannot {'; '.join(CAPABILITIES.get(need, f'vary {need}') for need in missing)}"
