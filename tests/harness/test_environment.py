"""What a results file records about where and on what it ran: git state, CUDA and driver, logit precision."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from bi_bench.engine import LLM
from bi_bench.harness import environment as env_module
from bi_bench.harness.environment import environment, git_state
from bi_bench.harness.model_info import model_record


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "tracked.txt").write_text("one\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_checkout_is_not_dirty(repo: Path) -> None:
    commit, dirty = git_state(repo)
    assert len(commit) == 40 and dirty is False


def test_ignored_files_do_not_count(repo: Path) -> None:
    (repo / "run.log").write_text("noise\n")
    assert git_state(repo)[1] is False


def test_untracked_files_count(repo: Path) -> None:
    (repo / "new_kernel.py").write_text("x = 1\n")
    assert git_state(repo)[1] is True


def test_changed_tracked_files_count(repo: Path) -> None:
    (repo / "tracked.txt").write_text("two\n")
    assert git_state(repo)[1] is True


def test_outside_a_checkout_nothing_is_claimed(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)


def test_no_cuda_records_null_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recorded = environment("cpu")
    assert (recorded.cuda, recorded.nvidia_driver) == (None, None)


def test_cuda_records_toolkit_and_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    real_output = env_module._output

    def fake_output(*command: str) -> str | None:
        return "550.54.15\n550.54.15\n" if command[0] == "nvidia-smi" else real_output(*command)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(env_module, "_output", fake_output)
    recorded = environment("cuda")
    assert (recorded.cuda, recorded.nvidia_driver) == ("12.8", "550.54.15")
    assert recorded.hardware == "cuda-nvidia-h100-80gb-hbm3"


def test_driver_is_null_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env_module, "_output", lambda *command: None)
    assert env_module.nvidia_driver() is None


@pytest.mark.parametrize("lm_head_fp32", [False, True])
def test_model_record_reports_lm_head_precision(lm_head_fp32: bool) -> None:
    llm = LLM("random:tiny-qwen3", dtype="float32", max_model_len=64, max_num_seqs=2, lm_head_fp32=lm_head_fp32)
    assert model_record(llm).lm_head_fp32 is lm_head_fp32
