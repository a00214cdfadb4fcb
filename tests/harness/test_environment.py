"""What a results file records about where and on what it ran: git state, CUDA and driver, CPU ISA, threads and
BLAS, logit precision."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import torch

from bi_bench.engine import LLM
from bi_bench.engine import torch_threads
from bi_bench.harness.backends.bi_bench_engine import engine_record
from bi_bench.harness.run import environment as env_module
from bi_bench.harness.run.environment import environment, git_state, torch_cpu_config
from bi_bench.kernels.cpu.isa import cpu_flags, isa_class, isa_features
from conftest import invoke, load

AVX2 = {"sse4_2", "avx", "avx2", "fma", "bmi2"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl"}
AVX512_BF16 = AVX512 | {"avx512_bf16"}
AMX = AVX512_BF16 | {"amx_bf16", "amx_tile", "amx_int8"}


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
    assert engine_record(llm).lm_head_fp32 is lm_head_fp32


@pytest.mark.parametrize(("flags", "expected"), [(AMX, "amx"), (AVX512_BF16, "avx512bf16"), (AVX512, "avx512"),
                                                 (AVX2, "avx2"), (AVX2 - {"fma"}, "baseline"),
                                                 ({"sse4_2"}, "baseline"), (set(), "baseline")])
def test_isa_class(flags: set[str], expected: str) -> None:
    assert isa_class(isa_features(flags)) == expected


def test_isa_features_keep_only_the_listed_ones_in_order() -> None:
    assert isa_features(AMX) == ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma"]
    assert isa_features(AVX2) == ["avx2", "fma"]


def test_cpu_flags_are_the_first_processors(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(("flags", "slug"), [(AVX512_BF16, "cpu-amd-epyc-avx512bf16"), (AVX2, "cpu-amd-epyc-avx2")])
def test_cpu_hardware_slug_names_the_isa_class(monkeypatch: pytest.MonkeyPatch, flags: set[str], slug: str) -> None:
    monkeypatch.setattr(env_module, "cpu_model", lambda: "AMD EPYC")
    monkeypatch.setattr(env_module, "cpu_flags", lambda: flags)
    recorded = environment("cpu")
    assert recorded.hardware == slug and recorded.cpu_isa == isa_features(flags)


def test_records_threads_capability_and_blas() -> None:
    with torch_threads(3):
        recorded = environment("cpu")
    assert recorded.torch_threads == 3
    assert recorded.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert f"CPU capability usage: {recorded.cpu_capability}" in recorded.torch_cpu_config


def test_torch_cpu_config_keeps_blas_onednn_and_openmp_lines() -> None:
    shown = ("PyTorch built with:\n  - GCC 13.3\n  - Intel(R) oneAPI Math Kernel Library Version 2024.2\n"
             "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71)\n  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n"
             "  - NNPACK is enabled\n  - CPU capability usage: AVX512\n"
             "  - Build settings: BLAS_INFO=open, BUILD_TYPE=Release, CXX_FLAGS= -O2 -fopenmp, USE_MKLDNN=ON, "
             "USE_OPENMP=ON, \n")
    assert torch_cpu_config(shown) == [
        "Intel(R) oneAPI Math Kernel Library Version 2024.2", "Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71)",
        "OpenMP 201511 (a.k.a. OpenMP 4.5)", "CPU capability usage: AVX512", "BLAS_INFO=open", "USE_MKLDNN=ON",
        "USE_OPENMP=ON"]


def test_validate_names_a_missing_environment_field(copy_results: Callable[[], Path]) -> None:
    path = copy_results()
    data = load(path)
    del data["environment"]["cpu_isa"]
    path.write_text(json.dumps(data))
    result = invoke("validate", path)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "environment.cpu_isa: Field required" in result.output
