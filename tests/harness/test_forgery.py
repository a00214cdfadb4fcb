"""Forgeries that agree with themselves: every digest, metric, verdict and summary figure recomputed after the
edit. validate rejects each (exit 1, one line naming the case and field) from the suite the file carries."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from bi_bench.harness.results.file import load_results, save
from bi_bench.harness.results.packed import FLOAT32, float_bytes, pack, unpack
from conftest import invoke
from forge import consistent, forge, replaced, with_group


def rejected(path: Path, *expected: str) -> str:
    result = invoke("validate", path)
    assert result.exit_code == 1, result.output
    for line in expected:
        assert line in result.output, result.output
    assert all(line.startswith(f"{path}: ") for line in result.output.splitlines())
    return result.output


def test_untouched_and_merely_recomputed_files_are_valid(copy_results: Callable[[], Path]) -> None:
    path = forge(copy_results(), lambda cases: cases)
    assert invoke("validate", path).exit_code == 0


def test_deleted_case_with_a_consistent_summary(copy_results: Callable[[], Path]) -> None:
    path = forge(copy_results(), lambda cases: [c for c in cases if c.id != "prefix_cache/invariant/tp1"])
    output = rejected(path, "cases: 'prefix_cache/invariant/tp1' (index 1) is missing")
    assert "summary" not in output


def test_added_case(copy_results: Callable[[], Path]) -> None:
    def add(cases):
        extra = cases[0].model_copy(update={"index": len(cases), "id": "batch_size/tp-invariant/tp1",
                                            "mode": "tp-invariant"})
        return [*cases, extra]

    rejected(forge(copy_results(), add),
             "cases[6]: 'batch_size/tp-invariant/tp1' (index 6) is not in the matrix of suite.source")


def test_relabelled_mode(copy_results: Callable[[], Path]) -> None:
    """An invariant-mode case passed off as a default-mode one, where a failed claim would read as `diverged`."""
    path = forge(copy_results(), lambda cases: replaced(cases, 2, mode="default"))
    rejected(path, "cases[2].mode: recorded 'default', the matrix has 'invariant'")


def test_unknown_mode_is_a_schema_error(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    results = load_results(path)
    data = results.model_dump(mode="python")
    data["cases"][0]["mode"] = "turbo"
    path.write_text(json.dumps(data))
    rejected(path, "cases[0].mode: Input should be 'default', 'invariant' or 'tp-invariant'")


def test_flipped_control(copy_results: Callable[[], Path]) -> None:
    path = forge(copy_results(), lambda cases: replaced(cases, 3, control=False))
    rejected(path, "cases[3].control: recorded False, the matrix has True")


def test_changed_param(copy_results: Callable[[], Path]) -> None:
    path = forge(copy_results(), lambda cases: replaced(cases, 0, params={**cases[0].params, "batch_sizes": [1]}))
    rejected(path, "cases[0].params.batch_sizes: recorded [1], the matrix has [1, 4, 12]")


def test_swapped_prompt(copy_results: Callable[[], Path]) -> None:
    """batch_size's default-mode case given prefix_cache's needle, whose digests then agree with it."""
    def swap(cases):
        other = cases[1].observations[0].prompt_token_ids
        return replaced(cases, 3, **with_group(cases[3], prompt_token_ids=other))

    rejected(forge(copy_results(), swap),
             "cases[3].observations[0].prompt_token_ids: not the prompt of 'batch_size/invariant/tp1'")


def test_truncated_observation(copy_results: Callable[[], Path]) -> None:
    def truncate(cases):
        group = cases[0].observations[0]
        first = group.candidates[0]
        short = first.observation.model_copy(update={"token_ids": first.observation.token_ids[:-1],
                                                     "logprobs": first.observation.logprobs[:-1]})
        candidates = [first.model_copy(update={"observation": short}), *group.candidates[1:]]
        return replaced(cases, 0, **with_group(cases[0], candidates=candidates))

    rejected(forge(copy_results(), truncate),
             "cases[0].observations[0].candidates[0].observation: 3 tokens, but sampling.max_tokens=4 with "
             "ignore_eos implies 4")


def test_one_logprob_per_token(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    data = json.loads(path.read_text())
    reference = data["cases"][0]["observations"][0]["reference"]
    reference["logprobs"] = pack(float_bytes(unpack(reference["logprobs"], FLOAT32)[:-1]))
    path.write_text(json.dumps(data))
    rejected(path, "cases[0].observations[0].reference: Value error, 4 token ids but 3 logprobs")


def test_edited_suite_text(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    results = load_results(path)
    suite = results.suite.model_copy(update={"source": results.suite.source.replace("max_tokens: 4", "max_tokens: 3")})
    save(path, results.model_copy(update={"suite": suite}))
    rejected(path, "suite.sha256: ")


def test_edited_config(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    results = load_results(path)
    config = {**results.suite.config, "sampling": {**results.suite.config["sampling"], "seed": 7}}
    save(path, results.model_copy(update={"suite": results.suite.model_copy(update={"config": config})}))
    rejected(path, "suite.config.sampling.seed: recorded 7, recomputed 1234")


def test_whole_file_passed_off_as_one_shard(copy_results: Callable[[], Path]) -> None:
    """Shard 1 of 2 holds the even indices only; the summary is recomputed for a shard."""
    path = copy_results()
    results = load_results(path)
    shard = results.model_copy(update={"suite": results.suite.model_copy(update={"shard": "1/2"})})
    save(path, consistent(shard, list(shard.cases)))
    output = rejected(path, "cases[1]: 'prefix_cache/invariant/tp1' (index 1) is not in the matrix of suite.source")
    assert "cases[0]:" not in output


@pytest.mark.parametrize("model_id", ["random:tiny-llama", "random:tiny-qwen3-other"])
def test_model_not_in_the_suite(copy_results: Callable[[], Path], model_id: str) -> None:
    path = copy_results()
    results = load_results(path)
    save(path, results.model_copy(update={"model": results.model.model_copy(update={"id": model_id})}))
    rejected(path, f"model: {model_id!r} in float32 is not a model of suite.source")
