"""Stops a server's process group once the harness process that started it is gone, whatever ended it.

The harness stops its servers on every exit it sees (close, atexit, Ctrl-C); a SIGKILL (the OOM killer's) leaves it
none. `start_watched` runs this file beside each server, in its process group, so stopping the group stops it too.
It runs by path, with the standard library only: it must not cost a torch import per server.

usage: python server_watchdog.py OWNER_PID
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

OWNER = "BI_BENCH_VLLM_OWNER"  # the harness process that started a server: tests find what it left behind
GRACE_SECONDS = 30  # vLLM's API server stops its engine core on SIGTERM; what lingers after this is killed


def start_watched(command: list[str], env: dict[str, str], cwd: Path, log: IO[bytes] | None
                  ) -> tuple[subprocess.Popen, subprocess.Popen]:
    """`command` in a process group of its own, and the watchdog of this process beside it in that group. Both
    carry OWNER in their environment; the caller reaps both when it stops the group."""
    owned = {**os.environ, OWNER: str(os.getpid())}
    server = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              process_group=0, env={**owned, **env})
    watchdog = subprocess.Popen([sys.executable, __file__, str(os.getpid())], cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=server.pid,
                                env=owned)
    return server, watchdog


def wait_for_exit(pid: int) -> None:
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    select.select([watched], [], [])  # a pidfd turns readable when its process exits


def group_has_others() -> bool:
    """Whether a live process other than this one is still in this process group."""
    me, group = os.getpid(), os.getpgrp()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            return True
    return False


def main(owner: int) -> None:
    wait_for_exit(owner)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the server
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while group_has_others() and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(0, signal.SIGKILL)  # this process included: it is the last thing to do


if __name__ == "__main__":
    main(int(sys.argv[1]))
