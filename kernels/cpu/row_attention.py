"""Paged attention in C++ where every (query token, head) row owns its reduction: batch-invariant by construction.

One program serves the query heads of one KV head for one token, reading each key once for all of them; each row
walks its own keys in position order (fixed-order dot products, an exact max, exp-weighted sums in key
order), so its bits cannot depend on the batch, the chunking, the cache or whether it is a prefill or a decode
row; and it reads the block cache in place, with none of the padding of fixed-shape tiles. The source is built
once per machine by torch's extension loader and cached. Backward (for `batch_invariant_mode`) differentiates
the torch fixed-split kernel: gradients need not be bitwise.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from platformdirs import user_cache_dir

from bi_bench.kernels.attention_metadata import AttentionMetadata
from bi_bench.kernels.cpu.attention import attention_fixed_split
from bi_bench.kernels.registry import register

SOURCE = Path(__file__).with_name("csrc") / "row_attention.cpp"
# fp-contract off: every multiply and add rounds on its own, whatever the compiler vectorizes or peels.
# OpenMP spreads the rows over torch's intra-op thread count.
COMPILE_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp"]
LINK_FLAGS = ["-fopenmp"]


def module_name() -> str:
    """Named by a digest of all it is built from: a built module is never stale, so it can be imported without
    taking the extension loader's lock, which a process killed while holding it leaves behind for good."""
    recipe = SOURCE.read_bytes() + repr((COMPILE_FLAGS, LINK_FLAGS, torch.__version__)).encode()
    return f"bi_bench_row_attention_{hashlib.sha256(recipe).hexdigest()[:16]}"


@functools.cache
def extension() -> ModuleType:
    name = module_name()
    build_dir = Path(user_cache_dir("bi-bench")) / "kernels" / name
    built = build_dir / f"{name}.so"
    if built.exists():
        with contextlib.suppress(ImportError):  # a module half written by a killed build is built again
            return _import(name, built)
    from torch.utils.cpp_extension import load

    build_dir.mkdir(parents=True, exist_ok=True)
    return load(name, [str(SOURCE)], extra_cflags=COMPILE_FLAGS, extra_ldflags=LINK_FLAGS,
                build_directory=str(build_dir))


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row_layout(meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query token's sequence and how many keys it sees (its position + 1), memoized for the step."""
    if "rows" not in meta.plans:
        seqs, keys = [], []
        for b, (count, length) in enumerate(zip(meta.query_lens(), meta.context_lens)):
            seqs.extend([b] * count)
            keys.extend(range(length - count + 1, length + 1))
        meta.plans["rows"] = (torch.tensor(seqs, dtype=torch.int64), torch.tensor(keys, dtype=torch.int64))
    return meta.plans["rows"]


class _RowAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                scale: float) -> torch.Tensor:
        ctx.save_for_backward(q, k_cache, v_cache)
        ctx.meta, ctx.scale = meta, scale
        row_seq, row_keys = row_layout(meta)
        out = extension().row_attention(q.float().contiguous(), k_cache.contiguous(), v_cache.contiguous(),
                                         row_seq, row_keys, meta.block_tables.to(torch.int32), scale)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = attention_fixed_split(*inputs, ctx.meta, ctx.scale)
        wanted = [t for t in inputs if t.requires_grad]
        grads = iter(torch.autograd.grad(out, wanted, grad))
        return (*(next(grads) if t.requires_grad else None for t in inputs), None, None)


@register("attention", "cpu_row_program", devices=("cpu",), batch_invariant=True,
          description="every (token, head) row walks its keys in position order in C++, reading the block "
                      "cache in place: one path for prefill, decode, chunked and cached tokens",
          preferred_for=("invariant",))
def attention_row_program(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, meta: AttentionMetadata,
                          scale: float) -> torch.Tensor:
    return _RowAttention.apply(q, k_cache, v_cache, meta, scale)
