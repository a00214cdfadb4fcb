"""openai: any OpenAI-compatible /v1/completions server someone already runs (SGLang, llama.cpp's server, TGI, a
vLLM on a GPU), given its base_url and model name.

Prompts go as token ids and tokens come back as ids (`return_tokens_as_token_ids`). Logprobs are stored as float32,
as the engines compute them (vLLM's JSON holds float32 values exactly); a server that answers in more precision
is rounded to float32, so a difference below one float32 step is not seen. A batch is one request of many prompts under the needle's sampling parameters (`request`),
or one request per prompt, all in flight at once (`concurrent`: the continuous-batching path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import requests

from bi_bench.engine import SamplingParams
from bi_bench.harness.backends.base import Backend, Capabilities, Completion, EngineError, NotApplicable
from bi_bench.harness.suite.schema import BackendSpec
from bi_bench.kernels.registry import MODES

NEG_INF_SENTINEL = -9999.0  # JSON has no -inf: vLLM sends this for a token outside the sampled support
TOKEN_ID_PREFIX = "token_id:"
RESET_ENDPOINTS = ("/reset_prefix_cache", "/flush_cache")  # vLLM (dev mode), SGLang


class ServerBackend(Backend):
    """An engine behind an HTTP server: it forms a batch as the suite's `batching` says."""

    @property
    def uniform_batches(self) -> bool:
        return self.spec.batching == "request"


class Unreachable(EngineError):
    """The server refused or dropped the connection: it is not (or no longer) there."""


@dataclass
class OpenAICompletions(ServerBackend):
    name = "openai"
    description = "an OpenAI-compatible /v1/completions server at base_url, run by someone else"
    capabilities = Capabilities(logprobs="raw", can=frozenset({"batch", "seed"}), settings=frozenset(), modes=MODES)
    server: Server | None = None

    @classmethod
    def from_spec(cls, spec: BackendSpec, model_id: str, device: str) -> Backend:
        for field in ("base_url", "model"):
            if not getattr(spec, field):
                raise ValueError(f"backend {cls.name}: {field}: required")
        server = Server(spec.base_url.rstrip("/"), spec.model, spec.timeout, spec.batching)
        server.check(cls.name)
        return cls(model_id, device, spec, server)

    @property
    def claimed_mode(self) -> str:
        return self.spec.mode or "invariant"

    @property
    def modes(self) -> tuple[str, ...]:
        """The server runs as it was started: in the one mode it claims."""
        return (self.claimed_mode,)

    def build(self, args: dict[str, Any]) -> Server:
        return self.server

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.server.version(), "base_url": self.spec.base_url,
                "reported": {"model": self.spec.model, "mode": self.claimed_mode, "batching": self.spec.batching}}


class Server:
    """One completions server: the engine every case of the model runs on."""

    def __init__(self, base_url: str, model: str, timeout: float, batching: str) -> None:
        self.base_url, self.model, self.timeout, self.batching = base_url, model, timeout, batching
        self.session = requests.Session()
        self.kernels: dict[str, str] = {}

    def check(self, backend: str) -> None:
        """ValueError naming the field when the server is not there or does not serve the model."""
        try:
            answer = self.session.get(f"{self.base_url}/v1/models", timeout=self.timeout)
            served = [entry.get("id") for entry in answer.json().get("data", [])]
        except requests.RequestException as exc:
            raise ValueError(f"backend {backend}: base_url: cannot reach {self.base_url} ({first_line(exc)})") from None
        except (ValueError, AttributeError):
            raise ValueError(f"backend {backend}: base_url: {self.base_url}/v1/models did not answer a model "
                             f"list (HTTP {answer.status_code})") from None
        if self.model not in served:
            raise ValueError(f"backend {backend}: model: the server at {self.base_url} serves {served}, "
                             f"not {self.model!r}")

    def version(self) -> str | None:
        try:
            return str(self.session.get(f"{self.base_url}/version", timeout=self.timeout).json().get("version"))
        except (requests.RequestException, ValueError, AttributeError):
            return None

    def generate(self, prompts: list[list[int]], sampling_params: list[SamplingParams]) -> list[Completion]:
        if self.batching == "request":
            if len(set(sampling_params)) != 1:
                raise NotApplicable("openai: one request of prompts that want other sampling parameters")
            return self._complete(prompts, sampling_params[0])
        with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
            answers = pool.map(lambda item: self._complete([item[0]], item[1])[0], zip(prompts, sampling_params))
            return list(answers)

    def score(self, prompts: list[list[int]], completions: list[list[int]], sampling_params: SamplingParams) -> Any:
        raise NotApplicable("openai: score is not available")

    def reset_prefix_cache(self) -> None:
        """Best effort: servers that have no such endpoint keep their cache (the capability is not claimed)."""
        for endpoint in RESET_ENDPOINTS:
            try:
                if self.session.post(f"{self.base_url}{endpoint}", timeout=self.timeout).ok:
                    return
            except requests.RequestException:
                continue

    def close(self) -> None:
        self.session.close()

    def _complete(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        body = completion_body(self.model, prompts, params)
        try:
            answer = self.session.post(f"{self.base_url}/v1/completions", json=body, timeout=self.timeout)
        except requests.Timeout:
            raise EngineError(f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise Unreachable(first_line(exc)) from None
        except requests.RequestException as exc:
            raise EngineError(first_line(exc)) from None
        if not answer.ok:
            raise EngineError(f"HTTP {answer.status_code}: {_error_message(answer)}")
        try:
            data = answer.json()
        except ValueError:
            raise EngineError(f"answered something that is not JSON: {answer.text[:80]!r}") from None
        return parse_choices(data, len(prompts))


def completion_body(model: str, prompts: list[list[int]], params: SamplingParams) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompts, "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p, "logprobs": 1,
                            "ignore_eos": params.ignore_eos, "return_tokens_as_token_ids": True}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.top_k:
        body["top_k"] = params.top_k
    if params.min_p:
        body["min_p"] = params.min_p
    return body


def parse_choices(data: Any, count: int) -> list[Completion]:
    """The completions in prompt order; EngineError for an answer that lacks them, their token ids or logprobs."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != count:
        raise EngineError(f"answered {len(choices) if isinstance(choices, list) else 'no'} choices for {count} prompts")
    by_index = sorted(choices, key=lambda choice: choice.get("index", 0) if isinstance(choice, dict) else 0)
    return [_completion(choice) for choice in by_index]


def _completion(choice: Any) -> Completion:
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("token_logprobs"), list):
        raise EngineError("answered without logprobs")
    tokens, values = logprobs.get("tokens"), logprobs["token_logprobs"]
    if not isinstance(tokens, list) or len(tokens) != len(values):
        raise EngineError(f"answered {len(values)} logprobs for {len(tokens) if isinstance(tokens, list) else 'no'} "
                          f"tokens")
    return Completion([_token_id(token) for token in tokens], [_logprob(value) for value in values])


def _token_id(token: Any) -> int:
    if isinstance(token, str) and token.startswith(TOKEN_ID_PREFIX) and token[len(TOKEN_ID_PREFIX):].isdigit():
        return int(token[len(TOKEN_ID_PREFIX):])
    raise EngineError(f"answered the token {token!r}, not a token id (it ignores return_tokens_as_token_ids)")


def _logprob(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EngineError(f"answered the logprob {value!r}, not a number")
    if math.isnan(value) or value > 0:
        raise EngineError(f"answered the logprob {value!r}")
    return -math.inf if value <= NEG_INF_SENTINEL else float(np.float32(value))


def _error_message(answer: requests.Response) -> str:
    try:
        error = answer.json()
        message = error.get("error", error).get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    return first_line(message or answer.text or answer.reason)


def first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
