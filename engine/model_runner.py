"""Builds the model with the chosen kernels, owns the KV cache, runs one scheduled step."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bi_bench.engine.config import KV_CACHE_BUDGET_BYTES, EngineConfig
from bi_bench.engine.forward_batch import ForwardBatch
from bi_bench.engine.kernel_set import KernelSet
from bi_bench.engine.layers.attention import PagedAttention
from bi_bench.engine.layers.sampler import SampleRequest, Sampler
from bi_bench.engine.loader import ModelSource, load_weights
from bi_bench.engine.models import model_class
from bi_bench.engine.models.llama import head_dim_of
from bi_bench.engine.scheduler import ScheduledSeq
from bi_bench.engine.sequence import Sequence
from bi_bench.kernels import AttentionMetadata


@dataclass
class SampledRows:
    seq: Sequence
    token_ids: list[int]
    logprobs: list[float]
    raw_logprobs: list[float]


class ModelRunner:
    def __init__(self, config: EngineConfig, source: ModelSource) -> None:
        self.config = config
        self.kernels = KernelSet.choose(config.device, config.torch_dtype, config.mode, config.kernels)
        with torch.device(config.device):
            self.model = model_class(source.config.architectures)(source.config, self.kernels, config.lm_head_fp32)
        load_weights(self.model, source, config.torch_dtype)
        self.model.lm_head.refresh()
        self.sampler = Sampler(self.kernels.log_softmax)
        self.attention_layers = [m for m in self.model.modules() if isinstance(m, PagedAttention)]
        self.num_kv_blocks = config.num_kv_blocks or self._default_num_blocks()
        self._allocate_kv_cache()

    def _bytes_per_block(self) -> int:
        hf = self.model.config
        element = torch.empty(0, dtype=self.config.torch_dtype).element_size()
        return 2 * len(self.attention_layers) * self.config.block_size * hf.num_key_value_heads * head_dim_of(hf) * element

    def _default_num_blocks(self) -> int:
        wanted = -(-self.config.max_num_seqs * self.config.max_model_len // self.config.block_size)
        return max(1, min(wanted, KV_CACHE_BUDGET_BYTES // self._bytes_per_block()))

    def _allocate_kv_cache(self) -> None:
        hf = self.model.config
        shape = (self.num_kv_blocks, self.config.block_size, hf.num_key_value_heads, head_dim_of(hf))
        for layer in self.attention_layers:
            layer.k_cache = torch.zeros(shape, dtype=self.config.torch_dtype, device=self.config.device)
            layer.v_cache = torch.zeros(shape, dtype=self.config.torch_dtype, device=self.config.device)

    @torch.inference_mode()
    def run(self, scheduled: list[ScheduledSeq]) -> list[SampledRows]:
        input_ids, batch = self._prepare(scheduled)
        hidden = self.model(input_ids, batch)
        rows, requests, owners = self._logit_rows(scheduled)
        if not rows:
            return []
        logits = self.model.compute_logits(hidden[torch.tensor(rows, device=hidden.device)])
        tokens, logprobs, raw = self.sampler(logits.cpu(), requests)
        results: dict[int, SampledRows] = {}
        for seq, token, logprob, raw_logprob in zip(owners, tokens, logprobs, raw):
            entry = results.setdefault(seq.seq_id, SampledRows(seq, [], [], []))
            entry.token_ids.append(token)
            entry.logprobs.append(logprob)
            entry.raw_logprobs.append(raw_logprob)
        return list(results.values())

    def _prepare(self, scheduled: list[ScheduledSeq]) -> tuple[torch.Tensor, ForwardBatch]:
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
        tables = torch.tensor([item.seq.block_table + [-1] * (width - len(item.seq.block_table))
                               for item in scheduled], dtype=torch.int32, device=self.config.device)
        device = self.config.device
        batch = ForwardBatch(
            positions=torch.tensor(positions, device=device),
            slot_mapping=torch.tensor(slots, device=device),
            attention=AttentionMetadata(query_start, context_lens, tables, block_size),
        )
        return torch.tensor(input_ids, device=device), batch

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
