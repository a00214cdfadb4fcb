"""Stops a server's process group once the harness process that started it is gone, whatever ended it.

The harness stops its servers on every exit it sees (close, atexit, Ctrl-C); a SIGKILL (the OOM killer's) leaves it
none. This runs beside each server, in its process group, so stopping the group stops it too. It is run by path,
with the standard library only: it must not cost a torch import per server.

usage: python server_watchdog.py OWNER_PID
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time

GRACE_SECONDS = 30  # vLLM's API server stops its engine core on SIGTERM; what lingers after this is killed


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
