"""batch_invariant_mode(): an unmodified Hugging Face model becomes batch invariant and matches the engine."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from transformers import AutoModelForCausalLM

from bi_bench.engine import LLM, SamplingParams
from bi_bench.kernels import batch_invariant_mode


@pytest.fixture(scope="module")
def qwen3_dir(tiny_model_dir):
    return tiny_model_dir("tiny-qwen3")


def short_batch() -> torch.Tensor:
    # 3 tokens: alone the matmuls see 3 rows, below the 4 where MKL changes its K order (12 with 2 threads)
    return torch.randint(0, 512, (8, 3), generator=torch.Generator().manual_seed(0))


def first_row_logits(model, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(ids[:1]).logits[0], model(ids).logits[0]


def test_hf_model_is_batch_invariant_inside_the_mode(qwen3_dir) -> None:
    model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32, attn_implementation="bi_bench")
    with batch_invariant_mode():
        alone, batched = first_row_logits(model, short_batch())
    assert torch.equal(alone, batched)


def test_hf_model_varies_with_batch_outside_the_mode(qwen3_dir) -> None:
    model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32)
    alone, batched = first_row_logits(model, short_batch())
    assert not torch.equal(alone, batched)


def test_mode_is_removed_on_exit() -> None:
    # one row: MKL takes its gemv path there, whose K order differs from its GEMM's on AMD and Intel alike (three
    # rows went through the GEMM's order on a Sapphire Rapids Xeon, so that control held on EPYCs only)
    a, b = torch.randn(32, 64), torch.randn(64, 48)
    with batch_invariant_mode():
        assert torch.equal(torch.mm(a[:1], b), torch.mm(a, b)[:1])
    assert not torch.equal(torch.mm(a[:1], b), torch.mm(a, b)[:1])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_engine_logprobs_equal_hf_recompute_in_the_mode(qwen3_dir, dtype: str) -> None:
    llm = LLM(str(qwen3_dir), dtype=dtype, mode="invariant")
    prompt = short_batch()[0].tolist() * 5
    out = llm.generate([prompt], SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True))[0]
    with batch_invariant_mode():  # built inside: its RoPE frequencies come from the canonical pow, as the engine's
        model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=getattr(torch, dtype),
                                                     attn_implementation="bi_bench")
    with torch.no_grad(), batch_invariant_mode():
        logprobs = torch.log_softmax(model(torch.tensor([prompt + out.token_ids])).logits[0].float(), -1)
    recomputed = [logprobs[len(prompt) - 1 + i, token].item() for i, token in enumerate(out.token_ids)]
    assert recomputed == out.raw_logprobs


def test_gradients_flow_through_the_mode(qwen3_dir) -> None:
    ids = short_batch()

    def grads(model) -> dict[str, torch.Tensor]:
        loss = torch.nn.functional.cross_entropy(model(ids).logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        return {name: p.grad for name, p in model.named_parameters()}

    model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32, attn_implementation="bi_bench")
    with batch_invariant_mode():
        invariant = grads(model)
    reference = grads(AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32))
    for name, grad in invariant.items():
        assert torch.allclose(grad, reference[name], rtol=1e-4, atol=1e-6), name


OVERRIDDEN_OPS = ("mm", "addmm", "bmm", "_log_softmax", "mean.dim")


def dispatch_table(op: str) -> dict[str, str]:
    """Dispatch key -> where its kernel for aten::`op` was registered."""
    lines = torch._C._dispatch_dump_table(f"aten::{op}").splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


@pytest.mark.parametrize("op", OVERRIDDEN_OPS)
def test_dispatcher_shows_our_kernels_for_cpu_and_cuda_inside_the_mode(op: str) -> None:
    outside = dispatch_table(op)
    with batch_invariant_mode():
        inside = dispatch_table(op)
    for key in ("CPU", "CUDA"):
        assert "kernels/invariant_mode.py" in inside[key], f"{key}: {inside[key]}"
        assert "kernels/invariant_mode.py" not in outside[key]
    for key in ("AutogradCPU", "AutogradCUDA"):
        # torch's autograd kernel stays on top and calls down into ours: derivatives need no kernel of ours
        assert inside[key] == outside[key] and inside[key].endswith("[autograd kernel]")
    assert dispatch_table(op) == outside


def test_backward_reaches_our_kernels_through_autograd() -> None:
    from bi_bench.kernels import invariant_mode

    calls, mm = [], invariant_mode._OVERRIDES["mm"]

    def counted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(a.shape))
        return mm(a, b)

    x, w = torch.randn(5, 8, requires_grad=True), torch.randn(8, 3, requires_grad=True)
    with mock.patch.dict(invariant_mode._OVERRIDES, {"mm": counted}), batch_invariant_mode():
        torch.mm(x, w).sum().backward()
    assert sorted(calls) == [(5, 3), (5, 8), (8, 5)]  # forward, grad of x, grad of w
    assert torch.allclose(x.grad, torch.ones(5, 3) @ w.detach().T)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
class TestOnCuda:
    def test_hf_model_is_batch_invariant_inside_the_mode(self, qwen3_dir) -> None:
        model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.bfloat16,
                                                     attn_implementation="bi_bench").cuda()
        with batch_invariant_mode():
            alone, batched = first_row_logits(model, short_batch().cuda())
        assert torch.equal(alone, batched)

    def test_aten_ops_are_the_triton_kernels_inside_the_mode(self) -> None:
        from bi_bench.kernels.triton.matmul import matmul_persistent

        a, b = torch.randn(3, 256, device="cuda"), torch.randn(256, 96, device="cuda")
        with batch_invariant_mode():
            assert torch.equal(torch.mm(a, b), matmul_persistent(a, b.t()))
            assert torch.equal(torch.mm(a[:1], b), torch.mm(a, b)[:1])

    def test_gradients_flow_through_the_mode(self, qwen3_dir) -> None:
        ids = short_batch().cuda()

        def grads(model) -> dict[str, torch.Tensor]:
            loss = torch.nn.functional.cross_entropy(model(ids).logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
            loss.backward()
            return {name: p.grad for name, p in model.named_parameters()}

        model = AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32,
                                                     attn_implementation="bi_bench").cuda()
        with batch_invariant_mode():
            invariant = grads(model)
        reference = grads(AutoModelForCausalLM.from_pretrained(qwen3_dir, dtype=torch.float32).cuda())
        for name, grad in invariant.items():
            assert torch.allclose(grad, reference[name], rtol=1e-3, atol=1e-5), name
