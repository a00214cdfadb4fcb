"""CPU kernel variants: accuracy against float64, bitwise invariance where claimed, contrasts that vary."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bi_bench.kernels import AttentionMetadata, get, variants
from test_canonical_kernels import at_threads

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}
K, N, HIDDEN, VOCAB = 384, 320, 256, 1000


def cpu_variants(op: str, invariant: bool | None = None) -> list[str]:
    return [v.name for v in variants(op) if "cpu" in v.devices and (invariant is None or v.batch_invariant == invariant)]


def matmul_cases() -> list:
    """Each CPU linear variant with each dtype it declares (cpu_fastest declares only the dtypes its CPU class was
    measured in, none on an unmeasured class)."""
    return [pytest.param(v.name, dtype, id=f"{v.name}-{dtype}") for v in variants("matmul")
            for dtype in (torch.float32, torch.bfloat16) if v.supports("cpu", dtype)]


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).norm() / expected.norm()).item()


# ---- matmul -------------------------------------------------------------------------------------------

def linear(name: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return get("matmul", name).fn(x, weight, bias)


@pytest.mark.parametrize(("name", "dtype"), matmul_cases())
def test_matmul_accuracy(name: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(37, K, generator=gen), torch.randn(N, K, generator=gen), torch.randn(N, generator=gen)
    x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
    expected = x.double() @ w.double().T + b.double()
    assert rel_err(linear(name, x, w, b), expected) < TOLERANCE[dtype]


@pytest.mark.parametrize(("name", "dtype"), matmul_cases())
def test_matmul_on_a_parameter_follows_in_place_updates(name: str, dtype: torch.dtype) -> None:
    """Variants may keep a converted or packed copy of a parameter (kernels/cpu/derived.py): it must be made
    again after the parameter changes in place, as update_weights changes it."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(37, K, generator=gen).to(dtype)
    weight = torch.nn.Parameter(torch.randn(N, K, generator=gen).to(dtype), requires_grad=False)
    for _ in range(2):
        assert rel_err(linear(name, x, weight), x.double() @ weight.double().T) < TOLERANCE[dtype]
        with torch.no_grad():
            weight.copy_(torch.randn(N, K, generator=gen))


@st.composite
def row_in_batch(draw):
    rows = draw(st.integers(1, 80))
    return rows, draw(st.integers(0, rows - 1)), draw(st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("name", cpu_variants("matmul", invariant=True))
@settings(max_examples=25, deadline=None)
@given(case=row_in_batch())
def test_matmul_invariant_variants_are_bitwise_row_stable(name: str, case) -> None:
    rows, position, seed = case
    gen = torch.Generator().manual_seed(seed)
    batch, w = torch.randn(rows, K, generator=gen), torch.randn(N, K, generator=gen)
    alone = linear(name, batch[position:position + 1], w)
    assert torch.equal(linear(name, batch, w)[position], alone[0])


def rows_that_vary(fn, width: int, seeds: int = 10) -> list[tuple[int, int]]:
    """(seed, batch size) pairs at which row 0 of fn(batch) differs from fn(row 0 alone)."""
    varied = []
    for seed in range(seeds):
        batch = torch.randn(64, width, generator=torch.Generator().manual_seed(seed))
        alone = fn(batch[:1])
        varied += [(seed, rows) for rows in (2, 3, 5, 8, 13, 32, 64) if not torch.equal(fn(batch[:rows])[:1], alone)]
    return varied


@pytest.mark.parametrize("name", ["torch", "split_k"])
def test_matmul_contrast_variants_vary_with_batch(name: str) -> None:
    w = torch.randn(N, K, generator=torch.Generator().manual_seed(2))
    assert rows_that_vary(lambda x: linear(name, x, w), K), f"{name} never varied: the control cannot fail"


# ---- rmsnorm ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", cpu_variants("rmsnorm"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_accuracy_and_residual(name: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    x, r = (torch.randn(19, HIDDEN, generator=gen).to(dtype) for _ in range(2))
    w = torch.rand(HIDDEN, generator=gen).to(dtype)
    out, summed = get("rmsnorm", name).fn(x, w, 1e-6, r)
    s = (x + r).double()
    expected = w.double() * s / torch.sqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.equal(summed, x + r)
    assert rel_err(out, expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("name", cpu_variants("rmsnorm", invariant=True))
@settings(max_examples=25, deadline=None)
@given(case=row_in_batch())
def test_rmsnorm_invariant_variants_are_bitwise_row_stable(name: str, case) -> None:
    rows, position, seed = case
    gen = torch.Generator().manual_seed(seed)
    batch, w = torch.randn(rows, 4096, generator=gen), torch.rand(4096, generator=gen)
    fn = get("rmsnorm", name).fn
    assert torch.equal(fn(batch, w, 1e-6)[0][position], fn(batch[position:position + 1], w, 1e-6)[0][0])


def test_rmsnorm_split_contrast_varies_with_batch() -> None:
    w = torch.rand(4096)
    assert rows_that_vary(lambda x: get("rmsnorm", "split").fn(x, w, 1e-6)[0], 4096)


# ---- log_softmax --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", cpu_variants("log_softmax"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_log_softmax_accuracy(name: str, dtype: torch.dtype) -> None:
    """Logits in either dtype, log-probabilities in fp32: only the input's rounding is allowed."""
    x = (torch.randn(11, VOCAB, generator=torch.Generator().manual_seed(4)) * 5).to(dtype)
    assert rel_err(get("log_softmax", name).fn(x), torch.log_softmax(x.double(), -1)) < 1e-6


@pytest.mark.parametrize("name", cpu_variants("log_softmax", invariant=True))
@settings(max_examples=25, deadline=None)
@given(case=row_in_batch())
def test_log_softmax_invariant_variants_are_bitwise_row_stable(name: str, case) -> None:
    rows, position, seed = case
    batch = torch.randn(rows, 49152, generator=torch.Generator().manual_seed(seed))
    fn = get("log_softmax", name).fn
    assert torch.equal(fn(batch)[position], fn(batch[position:position + 1])[0])


def test_log_softmax_split_contrast_varies_with_batch() -> None:
    assert rows_that_vary(get("log_softmax", "split").fn, VOCAB)


# ---- attention ----------------------------------------------------------------------------------------

BLOCK, HEADS, KV_HEADS, HEAD_DIM, BLOCKS = 16, 4, 2, 32, 64


class PagedCache:
    """A block cache holding random sequences at shuffled block ids."""

    def __init__(self, lengths: list[int], seed: int, dtype: torch.dtype = torch.float32) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.k = torch.randn(BLOCKS, BLOCK, KV_HEADS, HEAD_DIM, generator=gen).to(dtype)
        self.v = torch.randn(BLOCKS, BLOCK, KV_HEADS, HEAD_DIM, generator=gen).to(dtype)
        order = torch.randperm(BLOCKS, generator=gen).tolist()
        self.tables: list[list[int]] = []
        for length in lengths:
            count = math.ceil(length / BLOCK)
            self.tables.append(order[:count])
            order = order[count:]
        # one query per cache slot of each sequence, laid out like its blocks
        self.q = torch.randn(sum(len(t) for t in self.tables) * BLOCK, HEADS, HEAD_DIM, generator=gen).to(dtype)

    def run(self, name: str, picks: list[tuple[int, int, int]], window: int | None = None) -> torch.Tensor:
        """picks: (sequence, first query position, number of queries); queries end at the context end."""
        queries, starts, lens, tables = [], [0], [], []
        offsets = [0]
        for table in self.tables:
            offsets.append(offsets[-1] + len(table) * BLOCK)
        for seq, first, count in picks:
            queries.append(self.q[offsets[seq] + first: offsets[seq] + first + count])
            starts.append(starts[-1] + count)
            lens.append(first + count)
            tables.append(self.tables[seq])
        width = max(len(t) for t in tables)
        padded = torch.tensor([t + [-1] * (width - len(t)) for t in tables], dtype=torch.int32)
        meta = AttentionMetadata(starts, lens, padded, BLOCK)
        return get("attention", name).fn(torch.cat(queries), self.k, self.v, meta, HEAD_DIM ** -0.5, window)


def reference_attention(cache: PagedCache, seq: int, first: int, count: int, window: int | None = None
                        ) -> torch.Tensor:
    keys = cache.k[cache.tables[seq]].flatten(0, 1).double()
    values = cache.v[cache.tables[seq]].flatten(0, 1).double()
    offset = sum(len(t) * BLOCK for t in cache.tables[:seq])
    out = []
    for i in range(count):
        position = first + i
        q = cache.q[offset + position].double()
        k = keys[: position + 1].repeat_interleave(HEADS // KV_HEADS, dim=1)
        v = values[: position + 1].repeat_interleave(HEADS // KV_HEADS, dim=1)
        scores = torch.einsum("hd,thd->ht", q, k) * HEAD_DIM ** -0.5
        if window is not None:  # the window as a mask over every earlier key, not by slicing
            scores[:, torch.arange(position + 1) <= position - window] = -math.inf
        weights = torch.softmax(scores, -1)
        out.append(torch.einsum("ht,thd->hd", weights, v))
    return torch.stack(out)


@pytest.mark.parametrize("name", cpu_variants("attention"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_accuracy(name: str, dtype: torch.dtype) -> None:
    cache = PagedCache([70, 200, 9], seed=0, dtype=dtype)
    picks = [(0, 0, 70), (1, 199, 1), (2, 4, 5)]
    out = cache.run(name, picks)
    assert out.dtype == dtype
    expected = torch.cat([reference_attention(cache, *p) for p in picks])
    assert rel_err(out, expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("name", cpu_variants("attention"))
@pytest.mark.parametrize("window", [1, 7, 64, 300])
def test_attention_honours_a_sliding_window(name: str, window: int) -> None:
    """Rows see their last `window` keys: prefill rows near and past the window, a decode row far past it."""
    cache = PagedCache([70, 200, 9], seed=1)
    picks = [(0, 0, 70), (1, 199, 1), (2, 4, 5)]
    out = cache.run(name, picks, window)
    expected = torch.cat([reference_attention(cache, *p, window=window) for p in picks])
    assert rel_err(out, expected) < TOLERANCE[torch.float32]


@st.composite
def attention_case(draw):
    lengths = draw(st.lists(st.integers(1, 150), min_size=2, max_size=6))
    needle = draw(st.integers(0, len(lengths) - 1))
    chunk = draw(st.integers(1, lengths[needle]))
    window = draw(st.one_of(st.none(), st.integers(1, 100)))
    return lengths, needle, chunk, window, draw(st.integers(0, 2**31 - 1))


@pytest.mark.parametrize("name", cpu_variants("attention", invariant=True))
@settings(max_examples=20, deadline=None)
@given(case=attention_case())
def test_attention_invariant_variants_are_bitwise_stable(name: str, case) -> None:
    """The needle's last query: alone as a decode, inside a prefill chunk, among other sequences."""
    lengths, needle, chunk, window, seed = case
    cache = PagedCache(lengths, seed)
    last = lengths[needle] - 1
    decode_alone = cache.run(name, [(needle, last, 1)], window)[0]
    picks = [(s, length - 1, 1) if s != needle else (s, lengths[s] - chunk, chunk) for s, length in enumerate(lengths)]
    batch = cache.run(name, picks, window)
    end = sum(count for _, _, count in picks[: needle + 1])
    assert torch.equal(batch[end - 1], decode_alone)


@pytest.mark.parametrize("threads", [2, 3])
def test_row_program_rows_keep_their_bits_however_the_heads_are_shared_out(threads: int) -> None:
    """Few decode rows split a token's heads between the threads (one head or one KV head's group per unit), many
    give each thread whole tokens, a prefill chunk too: every row has the bits of its decode alone at one thread."""
    lengths = [80, 33, 17, 64, 5, 48, 71, 26, 9, 40, 55, 12]
    cache = PagedCache(lengths, seed=7)
    decode = [(seq, length - 1, 1) for seq, length in enumerate(lengths)]
    alone = [at_threads(1, lambda: cache.run("cpu_row_program", [pick]))[0] for pick in decode]
    for count in (1, 3, 5, 12):
        batch = at_threads(threads, lambda: cache.run("cpu_row_program", decode[:count]))
        assert all(torch.equal(batch[seq], alone[seq]) for seq in range(count)), f"{count} decode rows"
    prefill = at_threads(threads, lambda: cache.run("cpu_row_program", [(0, 0, lengths[0])]))
    assert torch.equal(prefill[-1], alone[0])


@pytest.mark.parametrize("heads, kv_heads, head_dim", [(3, 1, 12), (2, 2, 20), (8, 2, 64)])
def test_row_program_any_group_and_head_dim(heads: int, kv_heads: int, head_dim: int) -> None:
    """Head dims off the 8-lane width and key counts off the 4-key stride take the kernel's tail paths."""
    gen = torch.Generator().manual_seed(heads * head_dim)
    length, blocks = 37, torch.tensor([[5, 2, 7]], dtype=torch.int32)
    k_cache, v_cache = (torch.randn(8, BLOCK, kv_heads, head_dim, generator=gen) for _ in range(2))
    q = torch.randn(length, heads, head_dim, generator=gen)
    meta = AttentionMetadata([0, length], [length], blocks, BLOCK)
    out = get("attention", "cpu_row_program").fn(q, k_cache, v_cache, meta, head_dim ** -0.5)
    keys, values = (c[blocks[0].long()].flatten(0, 1)[:length].transpose(0, 1).double() for c in (k_cache, v_cache))
    expected = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1).double(), keys, values, is_causal=True, enable_gqa=True).transpose(0, 1)
    assert rel_err(out, expected) < TOLERANCE[torch.float32]


def test_attention_dynamic_split_contrast_varies_with_batch() -> None:
    cache = PagedCache([300, 40, 50, 60, 70, 80, 90, 100], seed=5)
    alone = cache.run("dynamic_split", [(0, 299, 1)])[0]
    batched = cache.run("dynamic_split", [(s, length - 1, 1) for s, length in enumerate([300, 40, 50, 60, 70, 80, 90, 100])])
    assert not torch.equal(batched[0], alone)


def test_every_op_has_a_cpu_invariant_variant_and_a_contrast() -> None:
    for op in ("matmul", "rmsnorm", "attention", "log_softmax"):
        assert cpu_variants(op, invariant=True) and cpu_variants(op, invariant=False), op


def test_built_row_program_loads_past_a_stale_build_lock() -> None:
    """A process killed inside torch's extension loader leaves its lock file behind; a built module must still load."""
    from bi_bench.kernels.cpu.extension import extension

    built = Path(extension().__file__)
    lock = built.with_name("lock")
    lock.touch()
    try:
        probe = "from bi_bench.kernels.cpu.extension import extension; print(extension().__file__)"
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    finally:
        lock.unlink()
    assert done.stdout.strip() == str(built), done.stderr[-2000:]
