"""vllm: vLLM's OpenAI-compatible server, started and stopped by the harness, one server per engine setting.

Invariant mode sets VLLM_BATCH_INVARIANT=1. Each server gets a free port on 127.0.0.1, its own process group and
a log file; it is ready when /health answers, and it is stopped (the whole group) when its engine is closed or
collected, at exit, and on Ctrl-C or a failed check; a watchdog in its group stops it if this process is killed.
It runs from `make vllm`'s venv (.venv-vllm), or the Python named by BI_BENCH_VLLM_PYTHON (`bi-bench run
--vllm-python`), with a working directory outside the checkout so that no folder of ours stands in for a package it
imports.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import requests

from bi_bench.harness.backends.base import Capabilities, EngineError
from bi_bench.harness.backends.openai_completions import Server, ServerBackend, Unreachable, first_line
from bi_bench.harness.backends.server_watchdog import start_watched
from bi_bench.harness.run.lock import REPO
from bi_bench.harness.suite.schema import BackendSpec
from bi_bench.kernels.registry import ONE_DEVICE_MODES

PYTHON_VARIABLE = "BI_BENCH_VLLM_PYTHON"
DEFAULT_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
EXIT_SECONDS = 15  # how long a server that stopped answering gets to exit, so its cause of death is the reason
STARTUP_SECONDS = 600  # a cold start compiles the model: about 2 minutes on 2 cores
# Both kinds of logprob exist in vLLM; ours are processed, and RL trainers want those (sampler == trainer).
DEFAULT_ARGS = ("--logprobs-mode", "processed_logprobs")
DEFAULT_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_SERVER_DEV_MODE": "1"}  # dev mode: /reset_prefix_cache
ERROR_LINE = re.compile(r"\b(\w*(?:Error|Exception)): \S.*")  # past the log prefix (process, level, time)
WRAPPING_ERRORS = ("EngineDeadError", "EngineGenerateError")  # vLLM's own wrappers around the root cause
# a logged line below error level may quote an error it only warns of ("... like `OSError: [Errno 24] ...`")
QUIET_LEVEL = re.compile(r"\b(?:DEBUG|INFO|WARNING) \d\d-\d\d ")


@dataclass
class VLLMServer(ServerBackend):
    name = "vllm"
    description = "vLLM's OpenAI-compatible server, started and stopped by the harness (invariant: " \
                  "VLLM_BATCH_INVARIANT=1)"
    capabilities = Capabilities(logprobs="processed",
                                can=frozenset({"batch", "seed", "reset_prefix_cache", "threads"}),
                                settings=frozenset({"enable_prefix_caching", "max_num_batched_tokens", "cpu_threads"}),
                                modes=ONE_DEVICE_MODES)
    python: Path = DEFAULT_PYTHON
    started: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> its first server, as recorded

    @classmethod
    def from_spec(cls, spec: BackendSpec, model_id: str, device: str) -> VLLMServer:
        python = Path(os.environ.get(PYTHON_VARIABLE) or DEFAULT_PYTHON).absolute()  # the server runs elsewhere
        if not os.access(python, os.X_OK):
            raise ValueError(f"backend {cls.name}: python: {python} is not there; `make vllm` builds it "
                             f"(or pass --vllm-python)")
        return cls(model_id, device, spec, python)

    def build(self, args: dict[str, Any]) -> VLLMProcess:
        source = self.source()
        if source.weights_dir is None:
            raise EngineError(f"model {self.model_id!r} has no weights folder for vLLM to load")
        command = [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1",
                   "--port", str(_free_port()), "--model", str(source.weights_dir),
                   "--served-model-name", self.model_id, "--dtype", args["dtype"],
                   "--max-model-len", str(args["max_model_len"]), "--max-num-seqs", str(args["max_num_seqs"]),
                   "--max-num-batched-tokens", str(args["max_num_batched_tokens"]), *DEFAULT_ARGS,
                   *([] if args["enable_prefix_caching"] else ["--no-enable-prefix-caching"]), *self.spec.args]
        env = {**DEFAULT_ENV, **self.spec.env, **_threads_env(args.get("cpu_threads")),
               **({"VLLM_BATCH_INVARIANT": "1"} if args["mode"] == "invariant" else {})}
        server = VLLMProcess(command, env, self.model_id, self.spec)
        if args.get("cpu_threads") is None:  # the threads check's servers are not the suite's own
            self.started.setdefault(args["mode"], server.description)
        return server

    @contextmanager
    def threads(self, count: int) -> Iterator[dict[str, Any]]:
        yield {"cpu_threads": count}

    def record(self) -> dict[str, Any]:
        """Default mode's server (invariant mode's adds VLLM_BATCH_INVARIANT=1), else the first one started."""
        described = self.started.get("default") or next(iter(self.started.values()), {})
        return {"name": self.name, **described}


class VLLMProcess(Server):
    """One vLLM server process: the engine for one setting."""

    def __init__(self, command: list[str], env: dict[str, str], model: str, spec: BackendSpec) -> None:
        port = command[command.index("--port") + 1]
        super().__init__(f"http://127.0.0.1:{port}", model, spec.timeout, spec.batching)
        self.command, self.env = command, env
        self.folder = Path(tempfile.mkdtemp(prefix="bi-bench-vllm-"))
        self.log = self.folder / "server.log"
        with open(self.log, "wb") as log:
            self.process, watchdog = start_watched(command, {"PYTHONSAFEPATH": "1", **env}, self.folder, log)
        self._stop = weakref.finalize(self, _stop_group, self.process, watchdog)
        self._wait_ready()
        self.description = {"version": self.version(), "command": command, "env": env, "reported": self.reported()}

    def close(self) -> None:
        super().close()
        self._stop()

    def generate(self, prompts: list[list[int]], sampling_params: list[Any]) -> Any:
        logged = self.log.stat().st_size
        try:
            return super().generate(prompts, sampling_params)
        except EngineError as exc:
            if isinstance(exc, Unreachable):  # a server that refuses connections is on its way out
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=EXIT_SECONDS)
            if self.process.poll() is not None:  # died earlier: its cause is further back in the log
                raise EngineError(f"the server had exited: {root_cause(self.log) or exc}") from None
            raise EngineError(root_cause(self.log, since=logged) or _earlier(root_cause(self.log), exc)) from None

    def reported(self) -> dict[str, Any] | None:
        """What the server says of its scheduler and cache (GET /server_info, dev mode)."""
        try:
            info = self.session.get(f"{self.base_url}/server_info", params={"config_format": "json"},
                                    timeout=self.timeout).json()
        except (requests.RequestException, ValueError):
            return None
        text = str(info)
        return {key: found.group(1) for key in ("max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching",
                                                "enable_chunked_prefill", "logprobs_mode")
                if (found := re.search(rf"'{key}': '?([\w.]+)", text))}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._stop()
                raise EngineError(root_cause(self.log) or f"the server exited with code {self.process.returncode} "
                                                       f"before it was ready (log: {self.log})")
            try:
                if self.session.get(f"{self.base_url}/health", timeout=5).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        self._stop()
        raise EngineError(f"not ready within {STARTUP_SECONDS} s (log: {self.log})")


def root_cause(log: Path, since: int = 0) -> str | None:
    """The first error line the server logged (past byte `since`) that is not one of vLLM's wrappers."""
    with open(log, "rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    for line in text.splitlines():
        found = None if QUIET_LEVEL.search(line) else ERROR_LINE.search(line)
        if found and found.group(1) not in WRAPPING_ERRORS:
            return first_line(found.group(0))
    return None


def _earlier(cause: str | None, error: EngineError) -> str:
    """An answer that failed without a new error in the log: the engine died before, of `cause`."""
    return str(error) if cause is None else f"{error} (logged earlier: {cause})"


def _stop_group(process: subprocess.Popen, *ours: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group (API server, engine core, workers, watchdog), SIGKILL to what
    lingers. `ours`: the group's other children of this process."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for child in (process, *ours):
                child.poll()  # reaps it, so only live members keep the group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _threads_env(count: int | None) -> dict[str, str]:
    """vLLM binds one OpenMP thread per listed core and drops repeated cores, so a count beyond the cores (or
    below them) runs unbound: OMP_NUM_THREADS threads for torch and vLLM's own kernels alike."""
    return {} if count is None else {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(count)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
