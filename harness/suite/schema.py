"""The suite document: which models, modes, kernel variants, workload, sampling, checks and throughput to run.

A suite is YAML read with `yaml.safe_load`; this module is its schema. Unknown fields are errors, and types
are strict (a string where a number belongs is an error, not a conversion).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from bi_bench.engine import DTYPES, EngineConfig
from bi_bench.harness.results.base import AddedLater, PositiveInt, Strict
from bi_bench.kernels.registry import DEVICES, MODES

Mode = Literal[MODES]  # a closed set: an engine accepts no other mode
Device = Literal[DEVICES]
Dtype = Literal[tuple(DTYPES)]
Seed = Annotated[int, Field(ge=0, lt=1 << 63)]


def model_label(model_id: str, dtype: str, backend: str | None) -> str:
    """A model as tested: id-dtype, and the backend's label unless it is bi-bench's own engine (results folders,
    leaderboard rows)."""
    return "-".join(part for part in (model_id, dtype, backend if backend != DEFAULT_BACKEND else None) if part)


DEFAULT_BACKEND = "bi-bench"


class BackendSpec(Strict):
    """The engine under test (bi_bench.harness.backends); bi-bench's own when a model names none."""

    name: str = Field(default=DEFAULT_BACKEND, min_length=1)
    base_url: str | None = Field(default=None, description="openai: the server's URL, e.g. http://127.0.0.1:8000")
    model: str | None = Field(default=None, description="openai, vllm: the model name the server serves")
    mode: Mode | None = Field(default=None, description="openai: the mode the server claims (default: invariant)")
    args: list[str] = Field(default_factory=list, description="vllm: extra server flags")
    env: dict[str, str] = Field(default_factory=dict, description="vllm: extra server environment")
    attn_implementation: str | None = Field(default=None, description="transformers: eager (default), sdpa, bi_bench")
    batching: Literal["request", "concurrent"] = Field(
        default="request", description="servers: a batch as one request of many prompts, or as concurrent requests")
    timeout: float = Field(default=120.0, gt=0, le=3600, description="servers: seconds to wait for one answer")

    @property
    def label(self) -> str:
        """Tells the engines under test apart: in results folder names and on the leaderboard."""
        return "-".join(part for part in (self.name, self.attn_implementation) if part)


class ModelSpec(AddedLater, Strict):
    """One model to test, with the engine settings its cases share."""

    added_later = ("backend",)

    id: str = Field(min_length=1)
    dtype: Dtype = EngineConfig.default("dtype")
    tp: list[PositiveInt] = Field(default=[1], min_length=1, description="tensor-parallel degrees to test")
    max_model_len: PositiveInt = EngineConfig.default("max_model_len")
    max_num_seqs: PositiveInt = EngineConfig.default("max_num_seqs")
    max_num_batched_tokens: PositiveInt = EngineConfig.default("max_num_batched_tokens")
    block_size: PositiveInt = EngineConfig.default("block_size")
    lm_head_fp32: bool = EngineConfig.default("lm_head_fp32")
    gpu_memory_utilization: float = Field(default=EngineConfig.default("gpu_memory_utilization"), gt=0, le=1,
                                          description="CUDA: share of GPU memory to fill")
    backend: BackendSpec | None = Field(default=None, description="the engine under test (default: bi-bench)")

    @property
    def label(self) -> str:
        return model_label(self.id, self.dtype, self.backend.label if self.backend else None)

    @model_validator(mode="after")
    def _distinct_tp(self) -> ModelSpec:
        if len(set(self.tp)) != len(self.tp):
            raise ValueError("tp lists a degree twice")
        return self


class Workload(Strict):
    """Needle and neighbour prompts, drawn from a built-in prompt set; `seed` fixes every draw of a run."""

    prompt_set: Literal["random-tokens", "english"] = "random-tokens"
    min_len: PositiveInt = 4
    max_len: PositiveInt = 48
    needle_len: list[PositiveInt] | None = Field(
        default=None, min_length=2, max_length=2, description="needles' [min, max] length; neighbours keep min_len..max_len (default: the same)")
    needles: PositiveInt = Field(default=1, le=64, description="distinct needle prompts per case")
    seed: Seed = 0

    @model_validator(mode="after")
    def _ordered(self) -> Workload:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len={self.min_len} is above max_len={self.max_len}")
        if self.needle_len is not None and self.needle_len[0] > self.needle_len[1]:
            raise ValueError(f"needle_len {self.needle_len} has its minimum above its maximum")
        return self

    @property
    def longest_prompt(self) -> int:
        return max(self.max_len, self.needle_len[1] if self.needle_len else 0)


class Sampling(Strict):
    """The needle's sampling parameters (bi_bench.engine.SamplingParams)."""

    temperature: float = Field(default=0.7, ge=0, le=100)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, le=1 << 20)
    min_p: float = Field(default=0.0, ge=0, le=1)
    max_tokens: PositiveInt = 16
    seed: Seed = 1234
    ignore_eos: bool = True


class Throughput(Strict):
    """The same workload under every mode x TP degree x kernel-variant setting (plus default and invariant mode at
    TP 1), runs interleaved within each TP degree."""

    prompts: PositiveInt = 8
    max_tokens: PositiveInt = 16
    repeats: PositiveInt = Field(default=3, le=100)


class Suite(Strict):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    device: Device = "cpu"
    models: list[ModelSpec] = Field(min_length=1)
    modes: list[Mode] = Field(default=["invariant", "default"], min_length=1,
                              description="default is always added: its cases are the negative controls")
    kernels: dict[Mode, dict[str, Annotated[list[str], Field(min_length=1)]]] = Field(
        default_factory=dict, description="per mode, op -> variants: every combination is its own case")
    workload: Workload = Workload()
    sampling: Sampling = Sampling()
    checks: dict[str, dict | None] = Field(min_length=1, description="check name -> its parameters")
    throughput: Throughput = Throughput()

    @model_validator(mode="after")
    def _with_default_mode(self) -> Suite:
        if len(set(self.modes)) != len(self.modes):
            raise ValueError("modes lists a mode twice")
        if "default" not in self.modes:
            object.__setattr__(self, "modes", [*self.modes, "default"])
        return self
