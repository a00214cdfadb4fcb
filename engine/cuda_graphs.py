"""CUDA graphs of the model's forward for decode steps, one per bucketed batch size (nano-vllm's capture).

A step of n one-token sequences replays the graph of the smallest bucket >= n, its extra rows padding
sequences in the padding block. Every kernel a graph holds treats rows independently (the invariant ones by
design, the default ones at least row for row within one launch), so padding changes no real row in
invariant mode: a replay gives eager's bits.
"""
from __future__ import annotations

import bisect

import torch
from torch import nn

from bi_bench.engine.forward_batch import ForwardBatch, StepInputs
from bi_bench.kernels.attention_metadata import AttentionMetadata, DeviceRows

SMALL_BATCH_SIZES = (1, 2, 4, 8)
BATCH_SIZE_STEP = 8


def graph_batch_sizes(max_num_seqs: int) -> list[int]:
    """1, 2, 4, 8, then every multiple of 8 from 16, then max_num_seqs itself."""
    small = [size for size in SMALL_BATCH_SIZES if size < max_num_seqs]
    return small + list(range(16, max_num_seqs, BATCH_SIZE_STEP)) + [max_num_seqs]


class DecodeGraphs:
    """Static input buffers sized for the largest bucket, and one captured graph per bucket reading them."""

    def __init__(self, model: nn.Module, max_num_seqs: int, max_model_len: int, block_size: int,
                 padding_block: int, hidden_size: int, dtype: torch.dtype) -> None:
        self.sizes = graph_batch_sizes(max_num_seqs)
        self.padding_block, self.block_size = padding_block, block_size
        self.width = -(-max_model_len // block_size)
        largest = self.sizes[-1]
        blank = StepInputs([], [], [], [0], [], [], block_size, []).padded(largest, padding_block, self.width)
        self.input_ids = torch.tensor(blank.input_ids, device="cuda")
        self.positions = torch.tensor(blank.positions, device="cuda")
        self.slots = torch.tensor(blank.slots, device="cuda")
        self.tables = torch.tensor(blank.block_tables, dtype=torch.int32, device="cuda")
        self.row_seq = torch.arange(largest, dtype=torch.int32, device="cuda")
        self.row_pos = torch.zeros(largest, dtype=torch.int32, device="cuda")
        self.hidden = torch.zeros(largest, hidden_size, dtype=dtype, device="cuda")
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._capture(model, max_model_len)

    @torch.inference_mode()
    def _capture(self, model: nn.Module, max_model_len: int) -> None:
        pool = None
        for size in reversed(self.sizes):  # largest first: the smaller graphs reuse its memory pool
            batch = self._batch(size, max_model_len)
            self._forward(model, size, batch)  # compiles the kernels outside the capture; writes the padding block
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool):
                self._forward(model, size, batch)
            pool = graph.pool()
            self.graphs[size] = graph
        torch.cuda.synchronize()

    def _batch(self, size: int, max_model_len: int) -> ForwardBatch:
        # context_lens only bound the lengths: each replay's real positions are in row_pos
        meta = AttentionMetadata(list(range(size + 1)), [max_model_len] * size, self.tables[:size], self.block_size,
                                 device_rows=DeviceRows(self.row_seq[:size], self.row_pos[:size]))
        return ForwardBatch(self.positions[:size], self.slots[:size], meta)

    def _forward(self, model: nn.Module, size: int, batch: ForwardBatch) -> None:
        self.row_pos[:size].copy_(self.positions[:size])  # a decode row's position is its sequence's last
        self.hidden[:size] = model(self.input_ids[:size], batch)

    def bucket(self, step: StepInputs) -> int | None:
        """The batch size whose graph runs `step`; None when it needs eager (a prefill, or too many rows)."""
        if not step.one_token_per_seq or len(step.input_ids) > self.sizes[-1]:
            return None
        return self.sizes[bisect.bisect_left(self.sizes, len(step.input_ids))]

    def replay(self, step: StepInputs, size: int) -> torch.Tensor:
        """Hidden states of the step's rows (a view of the graph's output, valid until the next replay)."""
        padded = step.padded(size, self.padding_block, self.width)
        for buffer, values in ((self.input_ids, padded.input_ids), (self.positions, padded.positions),
                               (self.slots, padded.slots), (self.tables, padded.block_tables)):
            host = torch.tensor(values, dtype=buffer.dtype).pin_memory()
            buffer[:size].copy_(host, non_blocking=True)
        self.graphs[size].replay()
        return self.hidden[:len(step.input_ids)]
