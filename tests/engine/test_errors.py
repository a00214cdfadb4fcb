"""Bad input: one line naming the problem, exit code 2, no traceback."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bi_bench.engine import LLM, SamplingParams
from bi_bench.engine.loader import ModelLoadError
from bi_bench.engine.models import UnsupportedArchitecture


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bi_bench.harness.cli.main", *args], capture_output=True, text=True)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def unsupported_model_dir(tmp_path, tiny_model_dir) -> str:
    source = tiny_model_dir("tiny-llama")
    target = tmp_path / "gpt"
    target.mkdir()
    config = json.loads((source / "config.json").read_text())
    config["architectures"] = ["MysteryForCausalLM"]
    (target / "config.json").write_text(json.dumps(config))
    (target / "model.safetensors").symlink_to(source / "model.safetensors")
    return str(target)


def test_bad_model_id() -> None:
    with pytest.raises(ModelLoadError, match="not a directory"):
        LLM("./no/such/model")
    assert_one_line_error(run_cli("generate", "--model", "./no/such/model", "hi"), "./no/such/model")


def test_unknown_random_architecture() -> None:
    assert_one_line_error(run_cli("generate", "--model", "random:gpt5", "hi"), "random:gpt5", "tiny-qwen3")


def test_unsupported_architecture_names_the_supported_ones(tmp_path, tiny_model_dir) -> None:
    path = unsupported_model_dir(tmp_path, tiny_model_dir)
    with pytest.raises(UnsupportedArchitecture, match="Qwen3ForCausalLM"):
        LLM(path)
    assert_one_line_error(run_cli("generate", "--model", path, "hi"), "MysteryForCausalLM", "LlamaForCausalLM")


def test_tensor_parallel_must_divide_heads() -> None:
    with pytest.raises(ValueError, match="does not divide num_attention_heads"):
        LLM("random:tiny-qwen3", tensor_parallel_size=3)
    assert_one_line_error(run_cli("generate", "--model", "random:tiny-qwen3", "--tp", "3", "hi"), "divide")


def test_bad_engine_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        LLM("random:tiny-qwen3", dtype="int3")
    with pytest.raises(ValueError, match="unknown matmul variant"):
        LLM("random:tiny-qwen3", kernels={"matmul": "nope"})
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)


def test_prompt_out_of_vocabulary() -> None:
    llm = LLM("random:tiny-qwen3")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llm.generate([[1, 2, 100000]])
