from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Triton picks interpreted or compiled mode once, when its functions are decorated, and transformers imports
# it through torch._dynamo while test modules are collected: on a machine without CUDA, decide here first.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Two xdist workers on two cores: with a thread pool each, OpenMP spin-waits make every step crawl.
# (With one thread, fp32 MKL matmul changes its K order between M < 4 and M >= 4 rows; tests rely on that.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="CUDA not available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def save_random_hf_model(arch: str, target: Path) -> Path:
    """A Hugging Face model with random weights and one of our tiny configs, saved as safetensors."""
    from transformers import AutoModelForCausalLM

    from bi_bench.engine.loader import resolve

    config = resolve(f"random:{arch}").config
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """Factory: arch name -> directory of a saved random HF model (one per arch per session)."""
    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            made[arch] = save_random_hf_model(arch, tmp_path_factory.mktemp(arch))
        return made[arch]

    return make
