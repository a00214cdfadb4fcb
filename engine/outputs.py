from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" or "length"
    logprobs: list[float]  # processed: under the distribution each token was drawn from
    raw_logprobs: list[float]  # log_softmax(logits.float()) before any processing


@dataclass
class ScoreOutput:
    prompt_token_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    raw_logprobs: list[float]
