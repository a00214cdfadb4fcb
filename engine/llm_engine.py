"""The engine loop: admit requests, schedule a step, run it, record what was sampled."""
from __future__ import annotations

import contextlib
import itertools
import random

import torch
from transformers import PretrainedConfig

from bi_bench.engine.block_manager import BlockManager
from bi_bench.engine.config import EngineConfig
from bi_bench.engine.distributed.parallel_state import TP_INVARIANT_CHUNKS
from bi_bench.engine.distributed.torchrun import TorchrunLaunch, TorchrunPeers, serve
from bi_bench.engine.distributed.weight_update import WeightUpdate
from bi_bench.engine.distributed.worker_pool import WorkerPool
from bi_bench.engine.loader import ModelSource, resolve
from bi_bench.engine.model_runner import ModelRunner, SampledRows
from bi_bench.engine.models.llama import head_dim_of
from bi_bench.engine.sampling_params import SamplingParams
from bi_bench.engine.scheduler import Scheduler
from bi_bench.engine.sequence import Sequence


class LLMEngine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.source: ModelSource = resolve(config.model)
        launch = torchrun_launch(config)
        check_tensor_parallel(self.source, config, launch)
        config.max_model_len = min(config.max_model_len, self.source.config.max_position_embeddings)
        if launch is not None and launch.rank > 0:
            serve(config, launch)
        self.workers = _peers(config, launch)
        self.runner = self._start_runner()
        self.block_manager = BlockManager(self.runner.num_kv_blocks, config.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens)
        self.eos_token_ids = _eos_token_ids(self.source)
        self._ids = itertools.count()
        self.weight_version = 0

    def update_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Between requests: new weights, and a new prefix-cache salt so old KV is never reused."""
        if self.scheduler.has_unfinished():
            raise RuntimeError("update_weights: requests are still running")
        self.runner.update_weights(state)  # first on rank 0: a state that does not fit fails before any send
        if self.workers is not None:
            update = WeightUpdate.of(state)
            with self.workers.guard():
                self.workers.send(update)
                update.broadcast(state, self.runner.process_group, self.config.device)
        self.weight_version += 1
        self.block_manager.set_weight_version(self.weight_version)

    def _start_runner(self) -> ModelRunner:
        if self.workers is None:
            return ModelRunner(self.config, self.source)
        with self.workers.guard():
            runner = ModelRunner(self.config, self.source, 0, self.workers.process_group)
            self.workers.wait_ready()
        return runner

    def close(self) -> None:
        """Stops the tensor-parallel workers; also done at exit and when the engine is collected."""
        if self.workers is not None:
            self.workers.close()

    def add_request(self, token_ids: list[int], params: SamplingParams, scoring: bool = False,
                    num_prompt_tokens: int = 0) -> Sequence:
        self._check_request(token_ids, params, scoring)
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(1 << 62)
        seq = Sequence(next(self._ids), list(token_ids), params, seed, scoring=scoring,
                       num_prompt_tokens=num_prompt_tokens)
        self.scheduler.add(seq)
        return seq

    def _check_request(self, token_ids: list[int], params: SamplingParams, scoring: bool) -> None:
        vocab = self.source.config.vocab_size
        if not token_ids:
            raise ValueError("prompt is empty")
        if any(not 0 <= t < vocab for t in token_ids):
            raise ValueError(f"prompt has token ids outside the vocabulary [0, {vocab})")
        longest = len(token_ids) + (0 if scoring else params.max_tokens)
        if len(token_ids) > self.config.max_model_len:
            raise ValueError(f"prompt of {len(token_ids)} tokens exceeds max_model_len={self.config.max_model_len}")
        if self.block_manager.blocks_needed(min(longest, self.config.max_model_len)) > self.runner.num_kv_blocks:
            raise ValueError(f"a request of up to {longest} tokens cannot fit in num_kv_blocks="
                             f"{self.runner.num_kv_blocks} of {self.config.block_size} tokens")

    def step(self) -> None:
        # An interrupt anywhere in a step (its send, its forward, its sampling) leaves rank 0 out of step with its
        # workers: stop them all.
        with self.workers.stepping() if self.workers is not None else contextlib.nullcontext():
            self._step()

    def _step(self) -> None:
        scheduled = self.scheduler.schedule()
        if not scheduled:
            raise RuntimeError("scheduler made no progress: no request fits the KV cache")
        results = self.runner.run(scheduled, self.workers)
        for item in scheduled:
            item.seq.num_computed_tokens += item.num_tokens
            self.block_manager.register_computed_blocks(item.seq)
        for result in results:
            self._record(result)
        for item in scheduled:
            if item.seq.scoring and item.seq.num_uncomputed_tokens == 0:
                self.scheduler.finish(item.seq, "length")

    def _record(self, result: SampledRows) -> None:
        seq = result.seq
        seq.logprobs.extend(result.logprobs)
        seq.raw_logprobs.extend(result.raw_logprobs)
        if seq.scoring:
            return
        token = result.token_ids[0]
        seq.token_ids.append(token)
        params = seq.params
        if token in params.stop_token_ids or (not params.ignore_eos and token in self.eos_token_ids):
            self.scheduler.finish(seq, "stop")
        elif len(seq.completion_token_ids) >= params.max_tokens or len(seq) >= self.config.max_model_len:
            self.scheduler.finish(seq, "length")

    def run_until_done(self) -> None:
        while self.scheduler.has_unfinished():
            self.step()


def torchrun_launch(config: EngineConfig) -> TorchrunLaunch | None:
    """The torchrun job this tensor-parallel engine spans; None when it spawns its own workers (or has none)."""
    launch = TorchrunLaunch.from_env()
    if config.tensor_parallel_size == 1 or launch is None or launch.world_size == 1:
        return None
    return launch


def _peers(config: EngineConfig, launch: TorchrunLaunch | None) -> WorkerPool | TorchrunPeers | None:
    if launch is not None:
        return TorchrunPeers(config, launch)
    return WorkerPool(config) if config.tensor_parallel_size > 1 else None


def check_tensor_parallel(source: ModelSource, config: EngineConfig, launch: TorchrunLaunch | None = None) -> None:
    """Every reason a degree cannot work, raised before any process starts."""
    hf, size = source.config, config.tensor_parallel_size
    if launch is not None and launch.world_size != size:
        raise ValueError(f"tensor_parallel_size={size} but torchrun started WORLD_SIZE={launch.world_size} "
                         "ranks: they must be equal")
    if launch is None and config.device == "cuda" and size > torch.cuda.device_count():
        raise ValueError(f"tensor_parallel_size={size} is more ranks than the {torch.cuda.device_count()} "
                         "CUDA devices")
    for name in ("num_attention_heads", "num_key_value_heads", "vocab_size", "intermediate_size"):
        if getattr(hf, name) % size:
            # KV heads are sharded, never replicated: one KV head (Gemma 3 270M) runs at TP 1 only.
            why = " (each rank holds whole KV heads)" if name == "num_key_value_heads" else ""
            raise ValueError(f"tensor_parallel_size={size} does not divide {name}={getattr(hf, name)}{why}")
    if config.mode == "tp-invariant":
        _check_tp_invariant(hf, size)


def _check_tp_invariant(hf: PretrainedConfig, size: int) -> None:
    chunks = TP_INVARIANT_CHUNKS
    if chunks % size:
        raise ValueError(f"mode 'tp-invariant': tensor_parallel_size={size} must divide {chunks}")
    head_dim = head_dim_of(hf)
    widths = {"num_key_value_heads * head_dim": hf.num_key_value_heads * head_dim,
              "num_attention_heads * head_dim": hf.num_attention_heads * head_dim,
              "intermediate_size": hf.intermediate_size, "vocab_size": hf.vocab_size}
    for name, width in widths.items():
        if width % chunks:
            raise ValueError(f"mode 'tp-invariant': {name}={width} is not a multiple of {chunks} chunks")


def _eos_token_ids(source: ModelSource) -> set[int]:
    ids = source.config.eos_token_id
    if ids is None and source.tokenizer is not None:
        ids = source.tokenizer.eos_token_id
    if ids is None:
        return set()
    return set(ids) if isinstance(ids, (list, tuple)) else {ids}
