"""A server started by `start_watched` dies with the process that started it, even one killed outright: on SIGTERM,
or on SIGKILL after the grace when it ignores SIGTERM. No vLLM needed: the server here is a sleeping Python."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bi_bench.harness.backends.server_watchdog import GRACE_SECONDS
from processes import running

OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from bi_bench.harness.backends.server_watchdog import start_watched
server, _ = start_watched([sys.executable, "-c", sys.argv[1]], {}, Path.cwd(), None)
print(server.pid, flush=True)
time.sleep(600)
"""
READY = "open('ready', 'w').close(); time.sleep(600)"
SERVERS = {"honours SIGTERM": f"import time; {READY}",
           "ignores SIGTERM": f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); {READY}"}


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not running(pid)


@pytest.mark.parametrize("behaviour", SERVERS)
def test_a_server_dies_with_its_killed_owner(behaviour: str, tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, SERVERS[behaviour]], cwd=tmp_path,
                             stdout=subprocess.PIPE)
    server = int(owner.stdout.readline())
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:  # its SIGTERM handler is set
            time.sleep(0.1)
        assert running(server)
        owner.kill()
        owner.wait()
        if behaviour == "ignores SIGTERM":
            assert not gone_within(server, 5), "it ignores SIGTERM: only the SIGKILL after the grace ends it"
        assert gone_within(server, GRACE_SECONDS + 10)
    finally:
        owner.kill()
        subprocess.run(["kill", "-9", str(server)], stderr=subprocess.DEVNULL)
