"""Converting the embedded GGUF into the user cache: processes converting at once all succeed, and one folder stays."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bi_bench.engine.loader import _publish, resolve

CONVERT = "from bi_bench.engine.loader import resolve; print(resolve('smollm2-135m').weights_dir)"


def convert_at_once(processes: int) -> list[subprocess.CompletedProcess]:
    jobs = [subprocess.Popen([sys.executable, "-c", CONVERT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(processes)]
    try:
        return [subprocess.CompletedProcess(job.args, job.wait(timeout=600), *job.communicate()) for job in jobs]
    finally:
        for job in jobs:
            job.kill()


@pytest.mark.slow
def test_concurrent_conversions_share_one_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty user cache, for this test and its subprocesses
    done = convert_at_once(2)
    for result in done:
        assert result.returncode == 0, result.stderr[-3000:]
    [folder] = {Path(result.stdout.strip()) for result in done}
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
    assert resolve("smollm2-135m").weights_dir == folder
    assert "model.embed_tokens.weight" in load_file(folder / "model.safetensors")


def folder_with(parent: Path, name: str, text: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "config.json").write_text(text)
    return folder


def test_publish_keeps_the_folder_of_whoever_finished_first(tmp_path: Path) -> None:
    target = folder_with(tmp_path, "model", "first")
    _publish(folder_with(tmp_path, ".model.abc.partial", "second"), target)
    assert (target / "config.json").read_text() == "first"


def test_publish_moves_staging_onto_a_new_target(tmp_path: Path) -> None:
    staging = folder_with(tmp_path, ".model.abc.partial", "mine")
    _publish(staging, tmp_path / "model")
    assert not staging.exists() and (tmp_path / "model" / "config.json").read_text() == "mine"
