"""Triton kernel variants: accuracy, bitwise batch invariance and negative controls.

Without CUDA the kernels run under the Triton interpreter on CPU tensors at tiny shapes; with CUDA the same
checks run compiled on the GPU, and the `gpu` class adds realistic shapes and bf16.
"""
import os
import sys

import torch

# Triton picks the interpreter when a function is decorated, its own tl.* helpers included: this must run
# before triton is first imported in this process.
TRITON_IMPORTED_COMPILED = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import math  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Callable, Iterable, Iterator  # noqa: E402
from unittest import mock  # noqa: E402

import pytest  # noqa: E402
from hypothesis import Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed")
if TRITON_IMPORTED_COMPILED and not torch.cuda.is_available():
    # e.g. transformers imports torch._dynamo, which imports triton, while other test modules are collected
    pytest.skip("triton was imported before TRITON_INTERPRET=1 was set: set it in the root conftest, or run "
                "this file on its own", allow_module_level=True)

from bi_bench.kernels import get  # noqa: E402
from bi_bench.kernels.attention_metadata import AttentionMetadata  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# No shrinking: each shrink step relaunches interpreted kernels, which turns one failure into minutes.
FEW = settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
REL_TOL = 1e-5


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    finite = torch.isfinite(ref)
    return ((out.double() - ref)[finite].abs().max() / ref[finite].abs().max()).item()


def randn(*shape: int, gen: torch.Generator, dtype: torch.dtype = torch.float32,
          device: str = DEVICE) -> torch.Tensor:
    return torch.randn(*shape, generator=gen).to(device, dtype)


def assert_rows_batch_invariant(run: Callable[[slice], torch.Tensor], rows: int, checked: Iterable[int]) -> None:
    """`run(s)` launches a kernel on rows `s` of one random batch: each checked row alone gives the same bits
    as inside the whole batch, at its position among random neighbours."""
    whole = run(slice(0, rows))
    for row in checked:
        assert torch.equal(run(slice(row, row + 1))[0], whole[row]), f"row {row} of {rows}"


# ---------------------------------------------------------------- matmul

def linear(name: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return get("matmul", name).fn(x, weight, bias)


@pytest.mark.parametrize("name", ["triton_persistent", "triton_split_k"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("rows", [1, 37])
def test_matmul_accuracy(name: str, with_bias: bool, rows: int) -> None:
    gen = torch.Generator().manual_seed(rows)
    x, weight, bias = randn(rows, 100, gen=gen), randn(70, 100, gen=gen), randn(70, gen=gen)
    bias = bias if with_bias else None
    ref = x.double() @ weight.double().T + (0 if bias is None else bias.double())
    out = linear(name, x, weight, bias)
    assert out.shape == (rows, 70) and out.dtype == x.dtype
    assert rel_err(out, ref) < REL_TOL


def check_matmul_invariance(rows: int, checked: Iterable[int], k: int, n: int, dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, weight, bias = randn(rows, k, gen=gen, dtype=dtype), randn(n, k, gen=gen, dtype=dtype), randn(n, gen=gen)
    assert_rows_batch_invariant(lambda s: linear("triton_persistent", x[s], weight, bias.to(dtype)), rows, checked)


@FEW
@given(rows=st.integers(2, 40), k=st.sampled_from([24, 100]), dtype=st.sampled_from([torch.float32, torch.bfloat16]),
       seed=st.integers(0, 2**16))
def test_matmul_persistent_rows_are_batch_invariant(rows: int, k: int, dtype: torch.dtype, seed: int) -> None:
    check_matmul_invariance(rows, range(rows), k, 40, dtype, seed)


def test_matmul_split_k_changes_bits_with_batch() -> None:
    """Negative control: a row's result depends on how many rows share the launch."""
    def differs(k: int, small: int, seed: int) -> bool:
        gen = torch.Generator().manual_seed(seed)
        x, weight = randn(80, k, gen=gen), randn(32, k, gen=gen)
        return not torch.equal(linear("triton_split_k", x[:small], weight), linear("triton_split_k", x, weight)[:small])

    assert any(differs(k, small, seed) for k in (72, 100) for small in (1, 20) for seed in range(2))


# ---------------------------------------------------------------- rmsnorm

def rmsnorm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    h = x.double()
    return weight.double() * h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)


@pytest.mark.parametrize("name", ["triton_rowwise", "triton_split"])
@pytest.mark.parametrize("with_residual", [True, False])
def test_rmsnorm_accuracy_and_residual(name: str, with_residual: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    x, weight = randn(5, 1500, gen=gen), randn(1500, gen=gen)
    residual = randn(5, 1500, gen=gen) if with_residual else None
    out, summed = get("rmsnorm", name).fn(x, weight, 1e-6, residual)
    expected_sum = x if residual is None else x + residual
    assert torch.equal(summed, expected_sum)
    assert out.dtype == x.dtype and rel_err(out, rmsnorm_reference(expected_sum, weight, 1e-6)) < REL_TOL


def check_rmsnorm_invariance(rows: int, checked: Iterable[int], hidden: int, dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x, residual = (randn(rows, hidden, gen=gen, dtype=dtype) for _ in range(2))
    weight = randn(hidden, gen=gen, dtype=dtype)
    rmsnorm = get("rmsnorm", "triton_rowwise").fn
    # output and residual sum side by side, so both are compared
    assert_rows_batch_invariant(lambda s: torch.stack(rmsnorm(x[s], weight, 1e-5, residual[s]), dim=1), rows, checked)


@FEW
@given(rows=st.integers(2, 24), hidden=st.sampled_from([96, 1500]),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]), seed=st.integers(0, 2**16))
def test_rmsnorm_rowwise_rows_are_batch_invariant(rows: int, hidden: int, dtype: torch.dtype, seed: int) -> None:
    check_rmsnorm_invariance(rows, range(rows), hidden, dtype, seed)


def test_rmsnorm_split_changes_bits_with_batch() -> None:
    def differs(seed: int) -> bool:
        gen = torch.Generator().manual_seed(seed)
        x, weight = randn(40, 1500, gen=gen), randn(1500, gen=gen)
        rmsnorm = get("rmsnorm", "triton_split").fn
        return not torch.equal(rmsnorm(x[:1], weight, 1e-6)[0], rmsnorm(x, weight, 1e-6)[0][:1])

    assert any(differs(seed) for seed in range(4))


# ---------------------------------------------------------------- log_softmax

def log_softmax(x: torch.Tensor) -> torch.Tensor:
    return get("log_softmax", "triton_rowwise").fn(x)


def test_log_softmax_accuracy_with_masked_logits() -> None:
    gen = torch.Generator().manual_seed(2)
    x = randn(4, 3000, gen=gen) * 4
    x[1, :2500] = -math.inf  # sampler masks (top-k, top-p) leave -inf logits, some whole blocks of them
    out = log_softmax(x)
    ref = torch.log_softmax(x.double(), dim=-1)
    assert out.dtype == torch.float32
    assert torch.equal(torch.isinf(out), torch.isinf(ref)) and rel_err(out, ref) < REL_TOL


def check_log_softmax_invariance(rows: int, checked: Iterable[int], vocab: int, dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = randn(rows, vocab, gen=gen, dtype=dtype) * 3
    assert_rows_batch_invariant(lambda s: log_softmax(x[s]), rows, checked)


@FEW
@given(rows=st.integers(2, 24), vocab=st.sampled_from([100, 2500]),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]), seed=st.integers(0, 2**16))
def test_log_softmax_rows_are_batch_invariant(rows: int, vocab: int, dtype: torch.dtype, seed: int) -> None:
    check_log_softmax_invariance(rows, range(rows), vocab, dtype, seed)


# ---------------------------------------------------------------- attention

@dataclass
class Sequence:
    keys: torch.Tensor  # [L, Hkv, D]
    values: torch.Tensor
    queries: torch.Tensor  # [L, Hq, D]: the query of every position, so any span can be asked


@dataclass
class PagedCache:
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    tables: list[torch.Tensor]  # physical blocks per sequence
    block_size: int


# A span asks for sequence `seq` with `context_len` cached tokens and its last `num_queries` positions as queries.
Span = tuple[int, int, int]


def make_sequence(length: int, gen: torch.Generator, heads: int = 2, kv_heads: int = 1, head_dim: int = 8,
                  dtype: torch.dtype = torch.float32) -> Sequence:
    return Sequence(*(randn(length, h, head_dim, gen=gen, dtype=dtype) for h in (kv_heads, kv_heads, heads)))


def paged_cache(seqs: list[Sequence], block_size: int, gen: torch.Generator) -> PagedCache:
    """Sequences' blocks at random physical blocks; unused slots and spare blocks hold noise."""
    counts = [math.ceil(len(s.keys) / block_size) for s in seqs]
    kv_shape = seqs[0].keys.shape[1:]
    total = sum(counts) + 3
    dtype = seqs[0].keys.dtype
    k_cache, v_cache = (randn(total, block_size, *kv_shape, gen=gen, dtype=dtype) for _ in range(2))
    tables = list(torch.randperm(total, generator=gen)[:sum(counts)].split(counts))
    for seq, table in zip(seqs, tables):
        slots = (table[:, None] * block_size + torch.arange(block_size)).flatten()[:len(seq.keys)].to(DEVICE)
        k_cache.flatten(0, 1)[slots] = seq.keys
        v_cache.flatten(0, 1)[slots] = seq.values
    return PagedCache(k_cache, v_cache, [t.to(torch.int32) for t in tables], block_size)


def attend(name: str, seqs: list[Sequence], cache: PagedCache, spans: list[Span], scale: float = 0.3,
           window: int | None = None) -> list[torch.Tensor]:
    """One launch over `spans`; the output rows of each span."""
    query_lens = [n for _, _, n in spans]
    starts = [0, *torch.tensor(query_lens).cumsum(0).tolist()]
    width = max(len(cache.tables[s]) for s, _, _ in spans)
    tables = torch.full((len(spans), width), -1, dtype=torch.int32)
    for b, (s, _, _) in enumerate(spans):
        tables[b, :len(cache.tables[s])] = cache.tables[s]
    meta = AttentionMetadata(starts, [c for _, c, _ in spans], tables.to(DEVICE), cache.block_size)
    q = torch.cat([seqs[s].queries[c - n:c] for s, c, n in spans])
    out = get("attention", name).fn(q, cache.k_cache, cache.v_cache, meta, scale, window)
    return list(out.split(query_lens))


def attention_reference(seq: Sequence, context_len: int, num_queries: int, scale: float = 0.3,
                        window: int | None = None) -> torch.Tensor:
    group = seq.queries.shape[1] // seq.keys.shape[1]
    keys = seq.keys.double().repeat_interleave(group, dim=1)
    values = seq.values.double().repeat_interleave(group, dim=1)
    rows = []
    for pos in range(context_len - num_queries, context_len):
        scores = torch.einsum("hd,khd->hk", seq.queries[pos].double(), keys[:pos + 1]) * scale
        if window is not None:  # the window as a mask over every earlier key
            scores[:, torch.arange(pos + 1) <= pos - window] = -math.inf
        rows.append(torch.einsum("hk,khd->hd", scores.softmax(-1), values[:pos + 1]))
    return torch.stack(rows)


@contextmanager
def small_splits() -> Iterator[None]:
    """Splits of 32 keys in chunks of 16, so tiny sequences cross several of both."""
    from bi_bench.kernels.triton import attention
    with mock.patch.object(attention, "SPLIT_KEYS", 32), mock.patch.object(attention, "BLOCK_KEYS", 16):
        yield


@pytest.mark.parametrize("name", ["triton_fixed_split", "triton_dynamic_split"])
def test_attention_accuracy_mixed_batch(name: str) -> None:
    """Decode past one 256-key split, a chunk with a cached prefix and a full prefill in one launch (GQA 4:2)."""
    gen = torch.Generator().manual_seed(3)
    seqs = [make_sequence(length, gen, heads=4, kv_heads=2) for length in (300, 70, 6)]
    spans = [(0, 300, 1), (1, 70, 4), (2, 6, 6)]
    outs = attend(name, seqs, paged_cache(seqs, 4, gen), spans)
    for (s, c, n), out in zip(spans, outs):
        assert out.dtype == torch.float32 and rel_err(out, attention_reference(seqs[s], c, n)) < REL_TOL


@FEW
@given(data=st.data(), needle_len=st.integers(1, 80), block_size=st.sampled_from([4, 16]),
       seed=st.integers(0, 2**16))
def test_attention_fixed_split_needle_is_batch_invariant(data: st.DataObject, needle_len: int, block_size: int,
                                                         seed: int) -> None:
    """The needle's rows are the same bits alone and among other sequences, at another cache layout."""
    gen = torch.Generator().manual_seed(seed)
    other_lens = data.draw(st.lists(st.integers(1, 60), min_size=1, max_size=3))
    seqs = [make_sequence(length, gen) for length in (needle_len, *other_lens)]
    needle = (0, needle_len, data.draw(st.integers(1, min(needle_len, 4))))
    others = [(s, length, data.draw(st.integers(1, min(length, 3)))) for s, length in enumerate(other_lens, 1)]
    at = data.draw(st.integers(0, len(others)))
    with small_splits():
        alone = attend("triton_fixed_split", seqs[:1], paged_cache(seqs[:1], block_size, gen), [needle])[0]
        spans = [*others[:at], needle, *others[at:]]
        batch = attend("triton_fixed_split", seqs, paged_cache(seqs, block_size, gen), spans)
    assert torch.equal(alone, batch[at])


@pytest.mark.parametrize("name", ["triton_fixed_split", "triton_dynamic_split"])
@pytest.mark.parametrize("window", [1, 5, 16, 40])
def test_attention_honours_a_sliding_window(name: str, window: int) -> None:
    """Windows inside one 16-key chunk, on a chunk edge, across splits; decode, cached-prefix chunk, prefill."""
    gen = torch.Generator().manual_seed(5)
    seqs = [make_sequence(length, gen, heads=4, kv_heads=2) for length in (100, 70, 6)]
    spans = [(0, 100, 1), (1, 70, 9), (2, 6, 6)]
    with small_splits():
        outs = attend(name, seqs, paged_cache(seqs, 4, gen), spans, window=window)
    for (s, c, n), out in zip(spans, outs):
        assert rel_err(out, attention_reference(seqs[s], c, n, window=window)) < REL_TOL


@pytest.mark.parametrize("window", [None, 11])
def test_attention_fixed_split_prefill_decode_and_chunked_prefill_agree(window: int | None) -> None:
    gen = torch.Generator().manual_seed(4)
    length = 40
    seqs = [make_sequence(length, gen), make_sequence(9, gen)]
    cache = paged_cache(seqs, 4, gen)
    with small_splits():
        prefill = attend("triton_fixed_split", seqs, cache, [(0, length, length)], window=window)[0]
        decode = torch.cat([attend("triton_fixed_split", seqs, cache, [(1, 9, 1), (0, pos + 1, 1)], window=window)[1]
                            for pos in range(length)])
        chunked = attend("triton_fixed_split", seqs, cache, [(0, 13, 13), (1, 9, 9), (0, 33, 20), (0, 40, 7)],
                         window=window)
    assert torch.equal(prefill, decode)
    assert torch.equal(prefill, torch.cat([chunked[0], chunked[2], chunked[3]]))


def test_attention_dynamic_split_changes_bits_with_batch() -> None:
    """Negative control: one decode row alone (many splits) and among seven others (one split)."""
    def differs(seed: int) -> bool:
        gen = torch.Generator().manual_seed(seed)
        seqs = [make_sequence(length, gen) for length in (100, 3, 3, 3, 3, 3, 3, 3)]
        cache = paged_cache(seqs, 4, gen)
        alone = attend("triton_dynamic_split", seqs, cache, [(0, 100, 1)])[0]
        batch = attend("triton_dynamic_split", seqs, cache, [(s, len(seq.keys), 1) for s, seq in enumerate(seqs)])[0]
        return not torch.equal(alone, batch)

    with small_splits():
        assert any(differs(seed) for seed in range(4))


# ---------------------------------------------------------------- on the GPU, at model shapes

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
class TestOnCuda:
    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
    @pytest.mark.parametrize("rows", [3, 64, 200, 1000])
    def test_matmul_persistent(self, dtype: torch.dtype, rows: int) -> None:
        check_matmul_invariance(rows, range(0, rows, max(1, rows // 16)), 2048, 1536, dtype, seed=rows)

    @pytest.mark.parametrize("rows", [3, 300])
    def test_rmsnorm_rowwise(self, rows: int) -> None:
        check_rmsnorm_invariance(rows, range(0, rows, max(1, rows // 16)), 4096, torch.bfloat16, seed=rows)

    def test_log_softmax_rowwise(self) -> None:
        check_log_softmax_invariance(64, range(0, 64, 4), 151_936, torch.float32, seed=0)

    def test_attention_fixed_split(self) -> None:
        gen = torch.Generator().manual_seed(5)
        shape = dict(heads=8, kv_heads=2, head_dim=128, dtype=torch.bfloat16)
        seqs = [make_sequence(length, gen, **shape) for length in (1500, *range(100, 1700, 100))]
        cache = paged_cache(seqs, 16, gen)
        needle = attend("triton_fixed_split", seqs, cache, [(0, 1500, 1)])[0]
        batch = attend("triton_fixed_split", seqs, cache, [(s, len(seq.keys), 1) for s, seq in enumerate(seqs)])
        prefill = attend("triton_fixed_split", seqs, cache, [(5, 500, 500), (0, 1500, 700)])
        decode = [attend("triton_fixed_split", seqs, cache, [(0, pos + 1, 1)])[0] for pos in range(800, 1500, 97)]
        assert torch.equal(needle, batch[0])
        assert torch.equal(torch.cat(decode), prefill[1][range(0, 700, 97)])

    def test_negative_controls_change_bits(self) -> None:
        gen = torch.Generator().manual_seed(6)
        x, weight = (randn(rows, 2048, gen=gen, dtype=torch.bfloat16) for rows in (256, 1024))
        split_k = get("matmul", "triton_split_k").fn
        assert not torch.equal(split_k(x[:1], weight), split_k(x, weight)[:1])


# ---------------------------------------------------------------- batch_invariant_mode's CUDA side

def aten(name: str) -> Callable:
    from bi_bench.kernels.triton.aten_overrides import OVERRIDES
    return OVERRIDES[name]


def test_aten_matmuls_are_accurate_and_rows_invariant() -> None:
    gen = torch.Generator().manual_seed(7)
    a, b, c, bias = randn(9, 40, gen=gen), randn(40, 24, gen=gen), randn(3, 9, 40, gen=gen), randn(24, gen=gen)
    assert rel_err(aten("mm")(a, b), a.double() @ b.double()) < REL_TOL
    assert rel_err(aten("addmm")(bias, a, b), bias.double() + a.double() @ b.double()) < REL_TOL
    scaled = 0.5 * bias.double() + 2 * a.double() @ b.double()
    assert rel_err(aten("addmm")(bias, a, b, beta=0.5, alpha=2), scaled) < REL_TOL
    assert rel_err(aten("bmm")(c, b.expand(3, 40, 24)), c.double() @ b.double()) < REL_TOL
    assert_rows_batch_invariant(lambda s: aten("addmm")(bias, a[s], b), 9, range(9))
    assert_rows_batch_invariant(lambda s: aten("bmm")(c[:, s], b.expand(3, 40, 24)).transpose(0, 1), 9, range(9))


# one program per row under the interpreter: few rows, and a last dim of two 1024-wide blocks
@pytest.mark.parametrize(("shape", "dim"), [((2, 3, 1100), -1), ((4, 3, 5), 0), ((4, 3, 5), 1)])
def test_aten_log_softmax_and_mean_over_any_dim(shape: tuple[int, ...], dim: int) -> None:
    gen = torch.Generator().manual_seed(8)
    x = randn(*shape, gen=gen)
    out = aten("_log_softmax")(x, dim, False)
    assert out.shape == x.shape and rel_err(out, torch.log_softmax(x.double(), dim)) < REL_TOL
    for keepdim in (True, False):
        mean = aten("mean.dim")(x, [dim], keepdim)
        assert mean.shape == x.mean(dim, keepdim=keepdim).shape
        assert rel_err(mean, x.double().mean(dim, keepdim=keepdim)) < REL_TOL
    half = x.to(torch.bfloat16)
    assert aten("_log_softmax")(half, dim, True).dtype == torch.float32
    assert aten("mean.dim")(half, [dim]).dtype == torch.bfloat16
    assert aten("mean.dim")(half, [dim], dtype=torch.float32).dtype == torch.float32


def test_aten_reductions_are_row_invariant_and_fall_back_for_other_dtypes() -> None:
    gen = torch.Generator().manual_seed(9)
    x = randn(12, 1500, gen=gen)
    assert_rows_batch_invariant(lambda s: aten("mean.dim")(x[s], [-1]), 12, range(12))
    assert_rows_batch_invariant(lambda s: aten("_log_softmax")(x[s], -1, False), 12, range(12))
    wide = x.double()
    assert torch.equal(aten("mean.dim")(wide, [-1]), torch.ops.aten.mean.dim(wide, [-1]))
    assert torch.equal(aten("mean.dim")(x, [0, 1]), torch.ops.aten.mean.dim(x, [0, 1]))


def test_hf_attention_through_triton_matches_sdpa_with_gradients() -> None:
    from bi_bench.kernels.invariant_mode import _TritonAttention

    gen = torch.Generator().manual_seed(10)
    q, k, v = (randn(2, h, 21, 8, gen=gen).requires_grad_() for h in (4, 2, 2))
    with small_splits():
        out = _TritonAttention.apply(q, k, v, 0.3, None)
        alone = _TritonAttention.apply(q[1:], k[1:], v[1:], 0.3, None)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3, enable_gqa=True)
    assert rel_err(out.detach(), ref.transpose(1, 2).detach().double()) < REL_TOL
    assert torch.equal(alone[0], out[1])
    out.sum().backward()
    expected = torch.autograd.grad(ref.sum(), (q, k, v))
    for grad, want in zip((q.grad, k.grad, v.grad), expected):
        assert torch.allclose(grad, want, atol=1e-5)
