"""The canonical CPU kernels: each output's bits depend on its own inputs only (never on the batch, the row
position, the thread count or the CPU build), their reduction order is the one csrc/matmul.cpp states, and
they are accurate against float64."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from bi_bench.kernels import AttentionMetadata, get
from bi_bench.kernels.cpu import pointwise
from bi_bench.kernels.cpu.extension import ISA_VARIABLE, extension, target_isa
from bi_bench.kernels.cpu.matmul import canonical_mm, linear_min_rows
from isa_probe import uniform

THREADS = (1, 2, 3, 5, 8, 12, 16)
# smollm2-135m's linears (out x in) and a shape that fits no tile
SHAPES = [(576, 1536), (1536, 576), (576, 576), (192, 576), (331, 197)]
LM_HEAD = (49152, 576)
ROWS = list(range(1, 65)) + [65, 96, 127, 128, 129, 200, 255, 333, 512, 777, 1024, 1500, 2048]
LM_HEAD_ROWS = list(range(1, 17)) + [31, 64, 100, 160]
PROBE = Path(__file__).with_name("isa_probe.py")


def at_threads(count: int, fn):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return fn()
    finally:
        torch.set_num_threads(previous)


def assert_rows_invariant(x: torch.Tensor, weight: torch.nn.Parameter, row_counts: list[int]) -> None:
    """Every M, at a start offset that moves each row to another position, at every thread count: bitwise
    equal to each row computed alone at one thread."""
    alone = at_threads(1, lambda: torch.cat([canonical_mm(row[None], weight) for row in x]))
    for threads in THREADS:
        for m in row_counts:
            start = (m * 37) % (len(x) - m + 1)
            out = at_threads(threads, lambda: canonical_mm(x[start:start + m], weight))
            assert torch.equal(out, alone[start:start + m]), f"M={m} at rows {start}.. with {threads} threads"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_matmul_rows_are_invariant(n: int, k: int, dtype: torch.dtype) -> None:
    weight = torch.nn.Parameter(uniform(n, k, seed=n).to(dtype), requires_grad=False)
    assert_rows_invariant(uniform(max(ROWS), k, seed=k).to(dtype), weight, ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lm_head_rows_are_invariant(dtype: torch.dtype) -> None:
    n, k = LM_HEAD
    weight = torch.nn.Parameter(uniform(n, k, seed=1).to(dtype), requires_grad=False)
    assert_rows_invariant(uniform(max(LM_HEAD_ROWS), k, seed=2).to(dtype), weight, LM_HEAD_ROWS)


def test_min_rows_matmul_is_only_a_control() -> None:
    """The variant that trusted MKL's blocked path no longer claims invariance: at 12 threads its rows differ
    from the same rows alone (seen here: M=17, row 16), which is why the canonical kernel exists."""
    from bi_bench.kernels import get

    assert not get("matmul", "cpu_min_rows").batch_invariant and get("matmul", "cpu_canonical").batch_invariant
    weight, x = uniform(576, 1536, seed=3), uniform(600, 1536, seed=4)
    alone = at_threads(1, lambda: torch.cat([linear_min_rows(row[None], weight) for row in x]))
    differs = any(not torch.equal(at_threads(threads, lambda: linear_min_rows(x[:m], weight)), alone[:m])
                  for threads in (5, 12, 16) for m in (17, 33, 100, 600))
    assert differs, "cpu_min_rows kept every row's bits: this control can no longer show anything"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_matmul_matches_float64(dtype: torch.dtype) -> None:
    x, weight = uniform(70, 333, seed=5).to(dtype), uniform(250, 333, seed=6).to(dtype)
    exact = x.double() @ weight.double().t()
    bound = 333 * 2 ** -24 * (x.double().abs() @ weight.double().abs().t())
    if dtype != torch.float32:  # the result is rounded once to the half type
        bound += exact.abs() * 2.0 ** -(8 if dtype == torch.bfloat16 else 11)
    out = canonical_mm(x, weight)
    assert out.dtype == dtype and out.shape == (70, 250)
    assert bool(((out.double() - exact).abs() <= bound).all())


def fma32(a: float, b: float, c: float, flush: bool) -> np.float32:
    """fp32 fma rounded once (exact rational arithmetic), optionally with denormal inputs read as zero and a
    denormal result flushed to zero."""
    tiny = float(np.finfo(np.float32).tiny)
    if flush:
        a, b, c = (0.0 if abs(v) < tiny else v for v in (a, b, c))
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    rounded = round_to_float32(exact)
    return np.float32(0.0) if flush and abs(float(rounded)) < tiny else rounded


def round_to_float32(value: Fraction) -> np.float32:
    """value rounded to the nearest fp32, ties to even (normal range)."""
    if value == 0:
        return np.float32(0.0)
    exponent = math.floor(math.log2(abs(value)))
    while Fraction(2) ** exponent > abs(value):
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= abs(value):
        exponent += 1
    quantum = Fraction(2) ** (max(exponent, -126) - 23)
    return np.float32(float(round(value / quantum) * quantum))  # round() on a Fraction ties to even


def test_matmul_fp32_order_is_one_fma_per_k_in_k_order() -> None:
    x, weight = uniform(3, 41, seed=7), uniform(37, 41, seed=8)
    out = canonical_mm(x, weight)
    for m, n in ((0, 0), (1, 17), (2, 36)):
        acc = np.float32(0.0)
        for k in range(41):
            acc = fma32(float(x[m, k]), float(weight[n, k]), float(acc), flush=False)
        assert acc == np.float32(out[m, n].item()), (m, n)


@pytest.mark.parametrize("rows", [3, 20])  # 20: above one tile, the FMA path on AMX builds (kNativeBf16Rows)
def test_matmul_bf16_order_is_vdpbf16ps(rows: int) -> None:
    """Odd element of each K pair first, K padded to even, denormals in as zero and out as zero."""
    x, weight = uniform(rows, 41, seed=9).bfloat16(), uniform(37, 41, seed=10).bfloat16()
    x[1, 3] = 1e-39  # a bf16 denormal: read as zero
    weight[17, 3] = 3e38
    out = canonical_mm(x, weight).float()  # rounded to bf16 at the end
    for m, n in ((0, 0), (1, 17), (2, 36)):
        acc = np.float32(0.0)
        for pair in range(21):
            for k in (2 * pair + 1, 2 * pair):
                if k < 41:
                    acc = fma32(float(x[m, k]), float(weight[n, k]), float(acc), flush=True)
        assert torch.tensor(float(acc)).bfloat16().item() == out[m, n].item(), (m, n)


@pytest.mark.parametrize("rows", [2, 20])
def test_matmul_bf16_output_is_the_fp32_sum_rounded_once_to_nearest_even(rows: int) -> None:
    """The tiles round their fp32 sums to bf16 as c10::BFloat16 does: ties to even (both ways), a NaN as 0x7FC0,
    in every column (vectors and a partial panel's tail). Each row's sum 1 + t is exact in fp32 (x = [1, t],
    weights 1), and in bf16 a tie, below or above half an ulp (2^-7 in [1, 2)). Control: truncation differs."""
    tails = [2.0 ** -8, 3 * 2.0 ** -8, 2.0 ** -9, 3 * 2.0 ** -9, 2.0 ** -8 + 2.0 ** -15, 0.0, -(2.0 ** -8)]
    rounded = [0x3F80, 0x3F82, 0x3F80, 0x3F81, 0x3F81, 0x3F80, 0x3F7F, 0x7FC0]
    truncated = [0x3F80, 0x3F81, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x3F7F, 0x7FC0]
    pairs = [[1.0, t] for t in tails] + [[math.nan, 0.0]]
    x = torch.tensor((pairs * 3)[:rows], dtype=torch.bfloat16)
    out = canonical_mm(x, torch.ones(37, 2, dtype=torch.bfloat16)).view(torch.int16)
    assert bool((out == out[:, :1]).all())
    expected = torch.tensor((rounded * 3)[:rows], dtype=torch.int16)
    assert torch.equal(out[:, 0], expected) and expected.tolist() != (truncated * 3)[:rows]
    assert rounded[:-1] == [int(torch.tensor(1.0 + t).bfloat16().view(torch.int16)) for t in tails]


@pytest.mark.parametrize("rows", [1, 20])
def test_matmul_bf16_flushes_denormal_results(rows: int) -> None:
    x = torch.tensor([[2.0 ** -70, 0.0]], dtype=torch.bfloat16)
    weight = torch.tensor([[2.0 ** -70, 0.0]], dtype=torch.bfloat16)  # the product, 2^-140, is denormal in fp32
    assert torch.equal(canonical_mm(x.expand(rows, 2).contiguous(), weight), torch.zeros(rows, 1, dtype=torch.bfloat16))
    assert canonical_mm(x.float(), weight.float()).item() == 2.0 ** -140  # fp32 keeps IEEE denormals


def ulps(out: torch.Tensor, exact: torch.Tensor) -> float:
    spacing = (torch.nextafter(exact.float().abs(), torch.tensor(math.inf)) - exact.float().abs()).double()
    return float(((out.double() - exact).abs() / spacing).max())


def test_exp_log_silu_gelu_accuracy() -> None:
    x = torch.linspace(-87.0, 88.5, 200_001)
    assert ulps(pointwise.exp(x), x.double().exp()) <= 1.0
    positive = torch.logspace(-37, 38, 200_001)
    assert ulps(pointwise.log(positive), positive.double().log()) <= 1.0
    small = torch.linspace(-30.0, 30.0, 20_001)
    assert ulps(pointwise.silu(small), small.double() / (1 + (-small.double()).exp())) <= 3.0
    g = small.double()
    gelu = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
    assert float((pointwise.gelu_tanh(small).double() - gelu).abs().max()) < 1e-6 * 30


def test_exp_log_special_values() -> None:
    inf, nan = math.inf, math.nan
    exp = pointwise.exp(torch.tensor([-inf, inf, nan, -200.0, 100.0, 0.0])).tolist()
    assert exp[:2] == [0.0, inf] and math.isnan(exp[2]) and exp[3:] == [0.0, inf, 1.0]
    log = pointwise.log(torch.tensor([0.0, -1.0, inf, 1.0, float(np.finfo(np.float32).smallest_subnormal)])).tolist()
    assert log[0] == -inf and math.isnan(log[1]) and log[2:4] == [inf, 0.0] and abs(log[4] + 103.2789) < 1e-3


def test_log_softmax_and_cumsum_rows_are_invariant_and_accurate() -> None:
    x = uniform(40, 49152, seed=11, scale=20.0)
    alone = torch.cat([extension().log_softmax(row[None]) for row in x])
    for threads in (1, 3, 16):
        assert torch.equal(at_threads(threads, lambda: extension().log_softmax(x)), alone)
    assert float((alone.double() - torch.log_softmax(x.double(), -1)).abs().max()) < 1e-5
    probabilities = pointwise.exp(alone)
    cumulative = pointwise.cumsum_last(probabilities)
    assert torch.equal(cumulative[7], pointwise.cumsum_last(probabilities[7:8])[0])
    assert float((cumulative.double() - probabilities.double().cumsum(-1)).abs().max()) < 1e-6


def test_log_softmax_max_is_the_rows_wherever_it_sits() -> None:
    """The max is found in 16 lanes plus the tail past them: an outlier far above the rest (exp would overflow
    against any smaller max) in every lane and in the tail, NaN-free, is still accurate; where the maximum is a
    zero, its sign (which the lanes may pick either way) leaves every output's bits alone."""
    width = 16 * 9 + 5
    for position in [*range(16), width - 1]:
        x = uniform(1, width, seed=position, scale=20.0)
        x[0, position] = 500.0
        expected = torch.log_softmax(x.double(), -1)
        assert bool(((extension().log_softmax(x).double() - expected).abs() <= 1e-6 * expected.abs() + 1e-6).all())
    zeros = -uniform(1, width, seed=3, scale=5.0).abs() - 1.0
    zeros[0, 2], zeros[0, 40], zeros[0, width - 1] = 0.0, -0.0, 0.0
    flipped = zeros.clone()
    flipped[0, 2], flipped[0, 40], flipped[0, width - 1] = -0.0, 0.0, -0.0
    out, out_flipped = extension().log_softmax(zeros), extension().log_softmax(flipped)
    assert torch.equal(out.view(torch.int32), out_flipped.view(torch.int32))


def test_greedy_pick_is_log_softmax_at_torch_max() -> None:
    """The greedy pick's token is torch.max's index (the first maximal element; the first NaN where the row holds
    one) and its logprob log_softmax's bits there, from fp32, bf16 and fp16 rows, at widths short of and past 16
    lanes, for ties, NaNs, infinities and signed zeros, alone or batched at any thread count. Control: the same
    pick through torch's log_softmax gives other bits."""
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for width in (1, 16, 33, 49152):
            x = uniform(10, width, seed=width, scale=20.0).to(dtype)
            x[1, width - 1] = x[1].max()  # a tie, the last one at the end
            x[2, :] = x[2, 0]
            x[3, :] = -math.inf
            x[4, width // 2] = math.inf
            x[5, width // 2] = math.nan
            x[6, 0] = math.nan
            x[7, :] = -0.0
            x[7, width - 1] = 0.0
            tokens, logprobs = extension().greedy(x)
            expected = x.float().max(dim=-1).indices
            assert torch.equal(tokens, expected)
            at_max = extension().log_softmax(x).gather(1, expected[:, None])[:, 0]
            assert torch.equal(logprobs.view(torch.int32), at_max.view(torch.int32))
            alone = [extension().greedy(row[None]) for row in x]
            assert torch.equal(torch.cat([lp for _, lp in alone]).view(torch.int32), logprobs.view(torch.int32))
            assert at_threads(3, lambda: torch.equal(extension().greedy(x)[1].view(torch.int32),
                                                     logprobs.view(torch.int32)))
    x = uniform(64, 49152, seed=2, scale=20.0)
    torch_pick = torch.log_softmax(x, -1).gather(1, x.max(dim=-1).indices[:, None])[:, 0]
    assert not torch.equal(torch_pick, extension().greedy(x)[1])


def test_rope_tables_are_float64_rounded_once() -> None:
    x = torch.arange(0, 4096).float()[:, None] * (1.0 / pointwise.pow_scalar(10000.0, torch.arange(0, 64, 2).float() / 64))
    assert torch.equal(pointwise.cos(x), x.double().cos().float())
    assert torch.equal(pointwise.sin(x), x.double().sin().float())


def run_probe(isa: str, capability: str | None, engine: bool) -> dict:
    env = {**os.environ, ISA_VARIABLE: isa}
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    done = subprocess.run([sys.executable, str(PROBE), *(["--engine"] if engine else [])], env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_other_builds_and_capabilities_give_the_same_bits() -> None:
    """The extension built with AVX2-only flags under torch's AVX2 kernels, and the native build under torch's
    scalar kernels: the same op outputs and golden-request digests as the native build here."""
    from golden import GOLDEN

    native = run_probe("native", None, engine=False)
    assert native["isa"] == target_isa("native")
    for isa, capability in (("avx2", "avx2"), ("native", "default")):
        other = run_probe(isa, capability, engine=True)
        assert other["isa"] == target_isa(isa)
        assert other["ops"] == native["ops"], (isa, capability)
        assert other["engine"] == GOLDEN, (isa, capability)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("unit_offset", [False, True])
@pytest.mark.parametrize("width", [1, 7, 64, 576, 1000])
def test_rmsnorm_cpp_has_the_halving_references_bits(dtype: torch.dtype, unit_offset: bool, width: int) -> None:
    """csrc/rmsnorm.cpp pinned to the torch-op statement of its order (kernels/cpu/rmsnorm.halving_reference)."""
    from bi_bench.kernels.cpu.rmsnorm import halving_reference, rmsnorm_halving
    generator = torch.Generator().manual_seed(width)
    x = (torch.randn(9, width, generator=generator) * 4).to(dtype)
    weight = (torch.randn(width, generator=generator) * 0.3 + 1).to(dtype)
    residual = torch.randn(9, width, generator=generator).to(dtype)
    for given in (None, residual):
        expected = halving_reference(x, weight, 1e-6, given, unit_offset)
        got = rmsnorm_halving(x, weight, 1e-6, given, unit_offset)
        for e, g in zip(expected, got):
            assert torch.equal(_bits(e), _bits(g))
    # control: the residual must change the output (a kernel that ignored it would still match without it)
    assert not torch.equal(_bits(rmsnorm_halving(x, weight, 1e-6, None, unit_offset)[1]),
                           _bits(rmsnorm_halving(x, weight, 1e-6, residual, unit_offset)[1]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rotary_cpp_has_hugging_faces_bits(dtype: torch.dtype) -> None:
    from bi_bench.kernels.generic.pointwise import rotate_half
    from bi_bench.kernels.cpu import pointwise
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 9, 64, generator=generator).to(dtype), torch.randn(5, 3, 64, generator=generator).to(dtype)
    angles = torch.rand(5, 64, generator=generator) * 100
    cos, sin = angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]
    got = pointwise.apply_rotary(q, k, cos, sin)
    for x, g in zip((q, k), got):
        assert torch.equal(_bits(x * cos + rotate_half(x) * sin), _bits(g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 7, 64])
def test_fused_linears_have_the_bits_of_one_call_each(dtype: torch.dtype, m: int) -> None:
    from bi_bench.kernels import get
    generator = torch.Generator().manual_seed(m)
    weights = [torch.nn.Parameter(torch.randn(n, 96, generator=generator).to(dtype), requires_grad=False)
               for n in (96, 32, 40)]
    x = torch.randn(m, 96, generator=generator).to(dtype)
    canonical = get("matmul", "cpu_canonical")
    alone = at_threads(1, lambda: [canonical.fn(x, weight) for weight in weights])
    # a single row panel's panels are shared out evenly, so a thread's share starts and ends inside a weight or
    # at another weight's first panel, depending on the thread count
    for threads in (1, 2, 3, 5):
        fused = at_threads(threads, lambda: canonical.linears(x, weights, [None] * 3))
        for expected, out in zip(alone, fused):
            assert torch.equal(_bits(expected), _bits(out)), f"{threads} threads"


def test_pointwise_op_is_named_and_its_variants_compute_the_same_functions() -> None:
    """Every CPU engine takes the canonical pointwise functions (its mode changes no elementwise bit), and the
    torch variant CUDA engines take computes the same functions."""
    from bi_bench.engine.kernel_set import KernelSet
    from bi_bench.kernels import get
    from bi_bench.kernels.registry import MODES

    for mode in MODES:
        for dtype in (torch.float32, torch.bfloat16):
            assert KernelSet.choose("cpu", dtype, mode).pointwise.name == "cpu_canonical"
    canonical, library = get("pointwise", "cpu_canonical").fn, get("pointwise", "torch").fn
    x = torch.randn(8, 1000, generator=torch.Generator().manual_seed(3))
    for name in ("exp", "silu", "gelu_tanh", "cos", "sin"):
        torch.testing.assert_close(getattr(canonical, name)(x), getattr(library, name)(x), msg=name)
    torch.testing.assert_close(canonical.log(x.abs() + 1e-3), library.log(x.abs() + 1e-3))
    torch.testing.assert_close(canonical.pow_scalar(10000.0, -x.abs()), library.pow_scalar(10000.0, -x.abs()))
    torch.testing.assert_close(canonical.cumsum_last(x.exp()), library.cumsum_last(x.exp()))
    q, k = torch.randn(5, 9, 64), torch.randn(5, 3, 64)
    cos, sin = torch.randn(5, 1, 64), torch.randn(5, 1, 64)
    for got, expected in zip(canonical.apply_rotary(q, k, cos, sin), library.apply_rotary(q, k, cos, sin)):
        assert torch.equal(got, expected)


def test_the_build_target_is_known_without_building() -> None:
    """What results files record as cpu_kernels (harness/run/environment.py) is what the built module reports."""
    assert target_isa() == extension().matmul_isa()


def row_program_reference(q: np.ndarray, keys: np.ndarray, values: np.ndarray, scale: float) -> np.ndarray:
    """One (token, head) row in csrc/row_attention.cpp's order, every fp32 operation rounded on its own: dot
    products with element d in partial sum d % 8, in element order from +0, combined by ((0+4)+(2+6))+((1+5)+(3+7));
    scores times scale; weights exp(score - max) summed in key order; out[d] the sum in key order from +0 of
    weight * value, over the total."""
    lanes = np.zeros((len(keys), 8), np.float32)
    for d in range(q.shape[0]):
        lanes[:, d % 8] = lanes[:, d % 8] + q[d] * keys[:, d]
    dots = ((lanes[:, 0] + lanes[:, 4]) + (lanes[:, 2] + lanes[:, 6])) + (
        (lanes[:, 1] + lanes[:, 5]) + (lanes[:, 3] + lanes[:, 7]))
    scores = dots * np.float32(scale)
    weights = pointwise.exp(torch.from_numpy(scores - scores.max())).numpy()
    total, out = np.float32(0.0), np.zeros(q.shape[0], np.float32)
    for weight, value in zip(weights, values):
        total = np.float32(total + weight)
        out = out + weight * value
    return out / total


@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(9, 3, 64), (3, 1, 12), (2, 2, 20), (8, 2, 64),
                                                             (4, 1, 256), (16, 2, 48)])
def test_row_program_order_is_the_documented_one(heads: int, kv_heads: int, head_dim: int,
                                                 cache_dtype: torch.dtype) -> None:
    """Every output element of every row (a causal prefill of 37 tokens: 1 to 37 keys, off the kernel's 4-key
    stride; groups of 1 to 8 query heads; head dims on and off the vector widths) bitwise equal to the reference."""
    block, length = 16, 37
    gen = torch.Generator().manual_seed(heads * head_dim)
    tables = torch.tensor([[5, 2, 7]], dtype=torch.int32)
    k_cache, v_cache = (torch.randn(8, block, kv_heads, head_dim, generator=gen).to(cache_dtype) for _ in range(2))
    q = torch.randn(length, heads, head_dim, generator=gen)
    meta = AttentionMetadata([0, length], [length], tables, block)
    scale = head_dim ** -0.5
    out = get("attention", "cpu_row_program").fn(q, k_cache, v_cache, meta, scale).numpy()
    keys, values = (c[tables[0].long()].flatten(0, 1)[:length].float().numpy() for c in (k_cache, v_cache))
    for token in range(length):
        for head in range(heads):
            kv = head // (heads // kv_heads)
            expected = row_program_reference(q[token, head].numpy(), keys[:token + 1, kv], values[:token + 1, kv],
                                             scale)
            assert np.array_equal(out[token, head], expected), (token, head)
