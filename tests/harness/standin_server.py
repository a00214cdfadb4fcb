"""A small OpenAI-compatible completions server of our own, for the openai backend's protocol edge cases.

Its answers are a function of each prompt alone (`invariant`), or also of how many prompts share the request
and how many requests are in flight (`batch_dependent`); the other behaviours misbehave as named.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "standin"
VOCAB = 151_000  # below random:tiny-qwen3's vocabulary
BEHAVIOURS = ("invariant", "batch_dependent", "no_logprobs", "malformed", "http500", "hang", "nan", "sentinel",
              "text_tokens", "dead")


class StandIn:
    def __init__(self, behaviour: str = "invariant", die_after: int | None = None) -> None:
        self.behaviour = behaviour
        self.die_after = die_after  # completions answered before it stops answering at all
        self.requests = 0
        self.peaks: dict[int, int] = {}  # request number -> most requests in flight at once while it was
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def completions(self, body: dict[str, Any]) -> tuple[int, str]:
        with self.lock:
            self.requests += 1
            number = self.requests
            self.peaks[number] = 0
            for other in self.peaks:
                self.peaks[other] = max(self.peaks[other], len(self.peaks))
        try:
            time.sleep(0.2)  # long enough for the requests of one batch to overlap, even on a loaded machine
            return self._answer(body, others=self.peaks[number] - 1)
        finally:
            with self.lock:
                del self.peaks[number]

    def _answer(self, body: dict[str, Any], others: int) -> tuple[int, str]:
        if self.behaviour == "malformed":
            return 200, '{"choices": [ {"index": 0,'
        if self.behaviour == "http500":
            return 500, json.dumps({"error": {"message": "EngineCore died: RuntimeError: boom\nTraceback ..."}})
        if self.behaviour == "hang":
            time.sleep(5)
        prompts = body["prompt"]
        drift = 1e-3 * (len(prompts) - 1 + others) if self.behaviour == "batch_dependent" else 0.0
        choices = [self._choice(i, prompt, body, drift) for i, prompt in enumerate(prompts)]
        return 200, json.dumps({"id": "cmpl-1", "object": "text_completion", "model": MODEL, "choices": choices[::-1]})

    def _choice(self, index: int, prompt: list[int], body: dict[str, Any], drift: float) -> dict[str, Any]:
        tokens = [(sum(prompt) + 7 * step + body.get("seed", 0)) % VOCAB for step in range(body["max_tokens"])]
        logprobs: list[Any] = [-1.0 - (token % 10) / 10 - drift for token in tokens]
        if self.behaviour == "nan":
            logprobs[0] = float("nan")
        if self.behaviour == "sentinel":
            logprobs[0] = -9999.0
        names = [f"token_id:{t}" if self.behaviour != "text_tokens" else f"tok{t}" for t in tokens]
        found = None if self.behaviour == "no_logprobs" else {"tokens": names, "token_logprobs": logprobs,
                                                              "top_logprobs": None, "text_offset": []}
        return {"index": index, "text": "", "logprobs": found, "finish_reason": "length"}


def _handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if standin.behaviour == "dead":
                self.close_connection = True
                return
            answers = {"/v1/models": {"object": "list", "data": [{"id": MODEL, "object": "model"}]},
                       "/version": {"version": "standin-1"}, "/health": {}}
            self._send(200 if self.path in answers else 404, json.dumps(answers.get(self.path, {})))

        def do_POST(self) -> None:
            if standin.die_after is not None and standin.requests >= standin.die_after:
                standin.behaviour = "dead"
            if standin.behaviour == "dead":
                self.close_connection = True
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or "{}")
            if self.path != "/v1/completions":
                self._send(404, "{}")
            elif body.get("model") != MODEL:
                self._send(404, json.dumps({"error": {"message": f"The model `{body.get('model')}` does not exist."}}))
            else:
                self._send(*standin.completions(body))

        def _send(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
