"""Engines under test: the openai backend against a stand-in server of ours (protocol edge cases, a server that is
not invariant, one that dies mid-run), and what every backend declares it can do."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bi_bench.engine import SamplingParams
from bi_bench.harness.backends import BACKENDS, EngineError
from bi_bench.harness.backends.openai_completions import Server
from bi_bench.harness.backends.vllm_server import root_cause
from conftest import invoke, load, results_files, tiny_document, write_suite
from standin_server import MODEL, StandIn

PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=3, seed=5, ignore_eos=True)


def openai_document(base_url: str = "http://127.0.0.1:9", **backend: Any) -> dict[str, Any]:
    document = tiny_document()
    document["name"] = "openai-standin"
    document["models"][0]["backend"] = {"name": "openai", "base_url": base_url, "model": MODEL, **backend}
    document["checks"] = {"batch_size": {"batch_sizes": [1, 4], "trials": 1}, "order": {"batch_size": 3, "trials": 1},
                          "repeat": {"runs": 2, "batch_size": 3}, "prefix_cache": {"trials": 1},
                          "threads": {"thread_counts": [1, 2], "batch_size": 3}}
    document["throughput"] = {"prompts": 2, "max_tokens": 2, "repeats": 1}
    return document


def verdicts(path: Path) -> dict[str, str]:
    return {case["id"]: case["verdict"] for case in load(path)["cases"]}


def test_ls_backends_lists_each_backend_and_its_capabilities() -> None:
    result = invoke("ls", "backends")
    assert result.exit_code == 0, result.output
    for name in BACKENDS:
        assert name in result.output
    assert BACKENDS["bi-bench"].capabilities.can >= {"score", "reset_prefix_cache", "threads", "trainer"}
    assert not BACKENDS["openai"].capabilities.can & {"score", "threads", "trainer"}


@pytest.mark.parametrize("behaviour, message", [
    ("no_logprobs", "answered without logprobs"),
    ("malformed", "answered something that is not JSON"),
    ("http500", "HTTP 500: EngineCore died: RuntimeError: boom"),
    ("nan", "answered the logprob nan"),
    ("text_tokens", "not a token id"),
    ("dead", "Connection aborted"),
])
def test_a_misbehaving_server_is_an_engine_error_with_its_first_line(behaviour: str, message: str) -> None:
    with StandIn(behaviour) as standin:
        server = Server(standin.url, MODEL, timeout=10, batching="request")
        with pytest.raises(EngineError, match=message) as caught:
            server.generate([[1, 2, 3]], [PARAMS])
        assert "\n" not in str(caught.value)


def test_a_hang_past_the_timeout_is_an_engine_error() -> None:
    with StandIn("hang") as standin:
        with pytest.raises(EngineError, match="no answer within 0.5 s"):
            Server(standin.url, MODEL, timeout=0.5, batching="request").generate([[1, 2]], [PARAMS])


def test_the_minus_inf_sentinel_is_minus_inf_and_choices_come_back_in_prompt_order() -> None:
    with StandIn("sentinel") as standin:
        server = Server(standin.url, MODEL, timeout=10, batching="request")
        first, second = server.generate([[1, 2], [3, 4, 5]], [PARAMS, PARAMS])
    assert first.logprobs[0] == -math.inf and math.isfinite(first.logprobs[1])
    assert first.token_ids != second.token_ids and len(first.token_ids) == len(second.token_ids) == 3


def test_concurrent_batching_sends_one_request_per_prompt_all_in_flight() -> None:
    with StandIn("batch_dependent") as standin:
        alone = Server(standin.url, MODEL, timeout=10, batching="concurrent").generate([[1, 2]], [PARAMS])[0]
        outputs = Server(standin.url, MODEL, timeout=10, batching="concurrent").generate(
            [[1, 2], [3], [4, 5]], [PARAMS, PARAMS, PARAMS])
        assert standin.requests == 4
    assert outputs[0].token_ids == alone.token_ids and outputs[0].logprobs != alone.logprobs


def test_an_invariant_server_holds_its_claims_and_what_it_cannot_do_is_not_applicable(tmp_path: Path) -> None:
    with StandIn("invariant") as standin:
        suite = write_suite(tmp_path, openai_document())
        result = invoke("run", suite, "--out", tmp_path / "out", "--base-url", standin.url)
    [path] = results_files(tmp_path / "out")
    found = verdicts(path)
    assert [found[f"{check}/invariant/tp1"] for check in ("batch_size", "order", "repeat")] == ["pass"] * 3
    assert found["prefix_cache/invariant/tp1"] == found["threads/invariant/tp1"] == "not_applicable"
    assert {found[case] for case in found if "/default/" in case} == {"not_applicable"}
    data = load(path)
    reasons = {case["id"]: case["reason"] for case in data["cases"]}
    assert reasons["threads/invariant/tp1"] == ("backend openai cannot run the same engine at another CPU "
                                                "thread count")
    assert data["backend"] == {"name": "openai", "label": "openai", "version": "standin-1", "base_url": standin.url,
                               "reported": {"model": MODEL, "mode": "invariant", "batching": "request"},
                               "command": None, "env": None}
    assert data["suite"]["config"]["models"][0]["backend"]["base_url"] == standin.url
    assert data["throughput"]["invariant"]["tokens"] == 4 and data["throughput"]["default"] is None
    assert result.exit_code == 1 and "NO NEGATIVE CONTROL DIVERGED" in result.output  # nothing to show it can fail
    assert invoke("validate", path).exit_code == 0


def test_shards_of_a_server_run_merge_with_their_backend(tmp_path: Path) -> None:
    with StandIn("invariant") as standin:
        suite = write_suite(tmp_path, openai_document(standin.url))
        for shard in ("1/2", "2/2"):
            invoke("run", suite, "--out", tmp_path / "out", "--shard", shard)
    shards = results_files(tmp_path / "out")
    result = invoke("merge", *shards, "-o", tmp_path / "merged.json")
    assert result.exit_code == 0, result.output
    merged = load(tmp_path / "merged.json")
    assert merged["backend"] == load(shards[0])["backend"] and merged["backend"]["name"] == "openai"
    assert invoke("validate", tmp_path / "merged.json").exit_code == 0


@pytest.mark.parametrize("batching", ["request", "concurrent"])
def test_a_server_that_is_not_invariant_fails(tmp_path: Path, batching: str) -> None:
    with StandIn("batch_dependent") as standin:
        suite = write_suite(tmp_path, openai_document(standin.url, batching=batching))
        result = invoke("run", suite, "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    assert verdicts(path)["batch_size/invariant/tp1"] == "fail"
    assert result.exit_code == 1 and "FAILED" in result.output


def test_a_server_that_dies_mid_run_fails_the_cases_after_and_the_run_goes_on(tmp_path: Path) -> None:
    with StandIn("invariant", die_after=3) as standin:
        suite = write_suite(tmp_path, openai_document(standin.url))
        result = invoke("run", suite, "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    data = load(path)
    errors = [case for case in data["cases"] if case["verdict"] == "engine_error"]
    assert errors and all(case["reason"].startswith("('Connection aborted.'") for case in errors)
    assert data["summary"]["verdicts"]["engine_error"] == len(errors) and not data["summary"]["ok"]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert invoke("validate", path).exit_code == 0


@pytest.mark.parametrize("backend, field", [
    ({"base_url": "http://127.0.0.1:9"}, "backend openai: base_url: cannot reach http://127.0.0.1:9"),
    ({"model": "nope"}, "backend openai: model: the server at"),
    ({"base_url": None}, "backend openai: base_url: required"),
])
def test_bad_backend_input_is_one_line_and_exit_2(tmp_path: Path, backend: dict[str, Any], field: str) -> None:
    with StandIn() as standin:
        document = openai_document(standin.url)
        document["models"][0]["backend"].update(backend)
        result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    assert result.exit_code == 2 and field in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_backend_names_the_field(tmp_path: Path) -> None:
    document = openai_document()
    document["models"][0]["backend"] = {"name": "sglang-typo"}
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "models[0].backend.name: unknown backend 'sglang-typo'" in result.output


def test_base_url_needs_an_openai_model(tmp_path: Path) -> None:
    result = invoke("run", write_suite(tmp_path, tiny_document()), "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "--base-url: " in result.output and "has no model with backend openai" in result.output


@pytest.mark.slow  # loads smollm2-135m into Hugging Face transformers twice
def test_transformers_runs_an_unmodified_hf_model_left_padded_in_both_modes(tmp_path: Path) -> None:
    document = tiny_document()
    document["name"] = "transformers-smollm2"
    document["models"] = [{"id": "smollm2-135m", "dtype": "float32", "max_model_len": 256,
                           "backend": {"name": "transformers", "attn_implementation": "eager"}}]
    document["checks"] = {"batch_size": {"batch_sizes": [1, 3], "trials": 1}, "prefill_decode": {}}
    document["throughput"] = {"prompts": 2, "max_tokens": 2, "repeats": 1}
    result = invoke("run", write_suite(tmp_path, document), "--out", tmp_path / "out")
    [path] = results_files(tmp_path / "out")
    data = load(path)
    found = verdicts(path)
    assert found["batch_size/invariant/tp1"] == "pass", result.output
    assert found["batch_size/default/tp1"] in ("diverged", "equal")
    assert found["prefill_decode/invariant/tp1"] == "not_applicable"
    assert data["backend"]["name"] == "transformers" and data["backend"]["version"]
    [case] = [c for c in data["cases"] if c["id"] == "batch_size/invariant/tp1"]
    assert case["kernels"] == {"model": "transformers/eager", "log_softmax": "cpu_canonical"}
    assert data["model"]["params_count"] > 100_000_000 and data["model"]["weights_sha256"]
    assert invoke("validate", path).exit_code == 0


def test_the_leaderboard_has_a_row_per_model_and_backend_naming_its_first_failed_check(tmp_path: Path) -> None:
    with StandIn("batch_dependent") as standin:
        invoke("run", write_suite(tmp_path, openai_document(standin.url)), "--out", tmp_path / "results")
    result = invoke("site", "build", "--results", tmp_path / "results", "--out", tmp_path / "site")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert (tmp_path / "site" / "models" / "random-tiny-qwen3-float32-openai.html").exists()
    assert "openai standin-1" in page
    assert "first failed check: batch_size/invariant/tp1 (fail)" in page


VLLM_LOG = """\
(APIServer pid=1) WARNING 12-05 06:58:30 [system_utils.py:255] Found ulimit of 20000 ... like `OSError: [Errno 24] Too many open files`
(Worker pid=3) ERROR 12-05 06:58:51 [multiproc_executor.py:1063] TypeError: 'function' object is not subscriptable
(APIServer pid=1) ERROR 12-05 06:58:51 [async_llm.py:906] vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.
"""


def test_the_root_cause_is_the_first_error_vllm_logged_not_a_warning_nor_its_wrapper(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(VLLM_LOG)
    assert root_cause(log) == "TypeError: 'function' object is not subscriptable"
    assert root_cause(log, since=len(VLLM_LOG)) is None
