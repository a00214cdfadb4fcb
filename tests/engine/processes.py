"""Whether a process the tests started is still running (shared by the engine's and the harness's process tests)."""
from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # gone, before or while it was read
        return False
    return state != "Z"
