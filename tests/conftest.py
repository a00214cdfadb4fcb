from __future__ import annotations

import os
import sys
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

# Test helpers shared across folders (needle battery, golden requests, ISA probe) import by module name.
sys.path[:0] = [str(Path(__file__).parent / folder) for folder in ("engine", "kernels")]


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
    randomize_biases_and_norms(model)
    model.save_pretrained(target)
    return target


def randomize_biases_and_norms(model: torch.nn.Module) -> None:
    # HF's init leaves biases at 0 and norm weights at 1: a model that ignored them would still match HF.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """Factory: arch name -> directory of a saved random HF model (one per arch per session)."""
    made: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in made:
            made[arch] = save_random_hf_model(arch, tmp_path_factory.mktemp(arch))
        return made[arch]

    return make
