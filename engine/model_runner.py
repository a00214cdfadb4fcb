"""Builds the model with the chosen kernels, owns the KV cache, runs one scheduled step."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from bi_bench.engine.config import KV_CACHE_BUDGET_BYTES, EngineConfig
from bi_bench.engine.cuda_graphs import DecodeGraphs
from bi_bench.engine.distributed.parallel_state import TP_INVARIANT_CHUNKS, TensorParallelGroup, building_for
from bi_bench.engine.distributed.torchrun import TorchrunPeers
from bi_bench.engine.distributed.weight_update import RankMessage, WeightUpdate
from bi_bench.engine.distributed.worker_pool import WorkerPool
from bi_bench.engine.forward_batch import StepInputs
from bi_bench.engine.host_memory import keep_step_buffers
from bi_bench.engine.kernel_set import KernelSet
from bi_bench.engine.kv_cache import blocks_in_gpu_memory, warm_up_step, zeroed_cache
from bi_bench.engine.layers.attention import PagedAttention
from bi_bench.engine.layers.sampler import SampleRequest, Sampler
from bi_bench.engine.loader import ModelSource, load_state_dict, load_weights
from bi_bench.engine.models import model_class
from bi_bench.engine.models.llama import head_dim_of
from bi_bench.engine.scheduler import ScheduledSeq
from bi_bench.engine.sequence import Sequence


@dataclass
class SampledRows:
    seq: Sequence
    token_ids: list[int]
    logprobs: list[float]
    raw_logprobs: list[float]


class ModelRunner:
    """One rank's shard of the model and its KV cache; rank 0 also prepares steps and samples."""

    def __init__(self, config: EngineConfig, source: ModelSource, rank: int = 0,
                 process_group: dist.ProcessGroup | None = None) -> None:
        self.config = config
        if config.device == "cpu":
            keep_step_buffers()
        self.kernels = KernelSet.choose(config.device, config.torch_dtype, config.mode, config.kernels)
        chunks = TP_INVARIANT_CHUNKS if config.mode == "tp-invariant" else 1
        self.process_group = process_group
        group = TensorParallelGroup(rank, config.tensor_parallel_size, process_group, self.kernels.all_reduce, chunks)
        with torch.device(config.device), building_for(group):
            self.model = model_class(source.config.architectures)(source.config, self.kernels, config.lm_head_fp32)
        load_weights(self.model, source, config.torch_dtype)
        self.model.lm_head.refresh()
        # logits are sampled on the host, so with the host's kernels for the mode
        host = self.kernels if config.device == "cpu" else KernelSet.choose("cpu", torch.float32, config.mode)
        self.sampler = Sampler(host.log_softmax, host.pointwise)
        self.attention_layers = [m for m in self.model.modules() if isinstance(m, PagedAttention)]
        self.graphs: DecodeGraphs | None = None
        self.num_kv_blocks = config.num_kv_blocks or self._default_num_blocks()
        self._allocate_kv_cache(self.num_kv_blocks)
        if self._uses_graphs():
            self.graphs = DecodeGraphs(self.model, config.max_num_seqs, config.max_model_len, config.block_size,
                                       self.num_kv_blocks, source.config.hidden_size, config.torch_dtype)

    def update_weights(self, state: dict[str, torch.Tensor]) -> None:
        """New values for every parameter (Hugging Face names, full tensors); cast to the engine dtype."""
        with torch.no_grad():
            load_state_dict(self.model, {name: t.to(self.config.torch_dtype) for name, t in state.items()})
        self.model.lm_head.refresh()

    def execute(self, message: RankMessage) -> None:
        """What a tensor-parallel worker does with each message from rank 0."""
        if isinstance(message, WeightUpdate):
            self.update_weights(message.receive(self.process_group, self.config.device))
        else:
            self.forward(message)

    def _bytes_per_block(self) -> int:
        element = torch.empty(0, dtype=self.config.torch_dtype).element_size()
        return 2 * len(self.attention_layers) * self.config.block_size * self._kv_heads() * self._head_dim() * element

    def _kv_heads(self) -> int:
        """This rank's KV heads: the cache is sharded by head."""
        return self.attention_layers[0].num_kv_heads

    def _head_dim(self) -> int:
        return head_dim_of(self.model.config)

    def _default_num_blocks(self) -> int:
        wanted = -(-self.config.max_num_seqs * self.config.max_model_len // self.config.block_size)
        if self.config.device == "cpu":
            return max(1, min(wanted, KV_CACHE_BUDGET_BYTES // self._bytes_per_block()))
        return min(wanted, self._fewest_on_any_rank(self._blocks_in_gpu_memory()))

    def _blocks_in_gpu_memory(self) -> int:
        """Runs the largest step once on a scratch cache, then sizes the cache from the memory left after it."""
        step, scratch_blocks = warm_up_step(self.config)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self._allocate_kv_cache(scratch_blocks)
        self.forward(step)
        torch.cuda.synchronize()
        used = torch.cuda.max_memory_allocated() - (scratch_blocks + 1) * self._bytes_per_block()
        for layer in self.attention_layers:
            layer.k_cache = layer.v_cache = torch.empty(0)
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        blocks = blocks_in_gpu_memory(free, total, self.config.gpu_memory_utilization, self._bytes_per_block(), used)
        if blocks < 1:
            raise ValueError(f"no GPU memory is left for the KV cache at gpu_memory_utilization="
                             f"{self.config.gpu_memory_utilization} ({used / 2**30:.1f} GiB in use of "
                             f"{total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free)")
        return blocks

    def _fewest_on_any_rank(self, blocks: int) -> int:
        """Every rank's cache must hold the blocks rank 0 hands out."""
        if self.process_group is None:
            return blocks
        count = torch.tensor([blocks], device=self.config.device)
        options = dist.AllreduceOptions()
        options.reduceOp = dist.ReduceOp.MIN
        self.process_group.allreduce([count], options).wait()
        return int(count.item())

    def _allocate_kv_cache(self, num_blocks: int) -> None:
        """`num_blocks` for the block manager and one more, the padding block of CUDA-graph padding rows."""
        shape = (num_blocks + 1, self.config.block_size, self._kv_heads(), self._head_dim())
        for layer in self.attention_layers:
            layer.k_cache = zeroed_cache(shape, self.config.torch_dtype, self.config.device)
            layer.v_cache = zeroed_cache(shape, self.config.torch_dtype, self.config.device)

    def _uses_graphs(self) -> bool:
        config = self.config
        # tensor-parallel ranks would have to capture and replay in lockstep: they run eagerly
        return (config.device == "cuda" and not config.enforce_eager and config.tensor_parallel_size == 1
                and self.kernels.graph_safe)

    def run(self, scheduled: list[ScheduledSeq],
            workers: WorkerPool | TorchrunPeers | None = None) -> list[SampledRows]:
        rows, requests, owners = self._logit_rows(scheduled)
        step = self._prepare(scheduled, rows)
        if workers is not None:
            workers.send(step)  # inside the engine's guard: a failure stops every rank
        logits = self.forward(step)
        if logits is None:
            return []
        tokens, logprobs, raw = self.sampler(logits.cpu(), requests)
        results: dict[int, SampledRows] = {}
        for seq, token, logprob, raw_logprob in zip(owners, tokens, logprobs, raw):
            entry = results.setdefault(seq.seq_id, SampledRows(seq, [], [], []))
            entry.token_ids.append(token)
            entry.logprobs.append(logprob)
            entry.raw_logprobs.append(raw_logprob)
        return list(results.values())

    @torch.inference_mode()
    def forward(self, step: StepInputs) -> torch.Tensor | None:
        """Logits of the step's logit rows (None when it has none); every rank runs this for every step."""
        hidden = self._hidden_states(step)
        if not step.logit_rows:
            return None
        return self.model.compute_logits(hidden[torch.tensor(step.logit_rows, device=hidden.device)])

    def _hidden_states(self, step: StepInputs) -> torch.Tensor:
        size = None if self.graphs is None else self.graphs.bucket(step)
        if size is not None:
            return self.graphs.replay(step, size)
        input_ids, batch = step.build(self.config.device)
        return self.model(input_ids, batch)

    def _prepare(self, scheduled: list[ScheduledSeq], logit_rows: list[int]) -> StepInputs:
        block_size = self.config.block_size
        input_ids, positions, slots, query_start, context_lens = [], [], [], [0], []
        for item in scheduled:
            seq, start = item.seq, item.seq.num_computed_tokens
            span = range(start, start + item.num_tokens)
            input_ids.extend(seq.token_ids[start:start + item.num_tokens])
            positions.extend(span)
            slots.extend(seq.block_table[p // block_size] * block_size + p % block_size for p in span)
            query_start.append(query_start[-1] + item.num_tokens)
            context_lens.append(start + item.num_tokens)
        width = max(len(item.seq.block_table) for item in scheduled)
        tables = [item.seq.block_table + [-1] * (width - len(item.seq.block_table)) for item in scheduled]
        return StepInputs(input_ids, positions, slots, query_start, context_lens, tables, block_size, logit_rows)

    @staticmethod
    def _logit_rows(scheduled: list[ScheduledSeq]) -> tuple[list[int], list[SampleRequest], list[Sequence]]:
        """Which hidden rows need logits: every scored position, and the last row of a completing generation."""
        rows, requests, owners, offset = [], [], [], 0
        for item in scheduled:
            seq, start = item.seq, item.seq.num_computed_tokens
            if seq.scoring:
                for position in seq.score_positions(start, start + item.num_tokens):
                    rows.append(offset + position - start)
                    requests.append(SampleRequest(seq.params, seq.seed, 0, target=seq.token_ids[position + 1]))
                    owners.append(seq)
            elif item.completes:
                rows.append(offset + item.num_tokens - 1)
                requests.append(SampleRequest(seq.params, seq.seed, len(seq.completion_token_ids)))
                owners.append(seq)
            offset += item.num_tokens
        return rows, requests, owners
