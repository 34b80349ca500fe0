"""A dev server killed with SIGKILL leaves no backend behind (Linux: read from /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.polling import eventually_sync

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to find the processes"
)

# A backend that listens and then only sleeps: it notices nothing when its dev server dies.
BACKEND = (
    "import os, socket, time; s = socket.socket(); "
    "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); time.sleep(300)"
)

SERVER = f"""
import shlex, sys
from jamsocket_rt.dev import BackgroundDevServer
# A shell command line: the backend is /bin/sh and the Python process it starts.
command = shlex.join([sys.executable, "-c", {BACKEND!r}])
server = BackgroundDevServer(command, quiet=True)
from jamsocket_rt import SyncJamsocket
with SyncJamsocket.dev_server(server.api_url) as api:
    for key in ("a", "b"):
        response = api.connect(key=key)
        for state in api.status_stream(response):  # ready: its process is the dev server's
            if state.is_ready:
                break
print("ready", flush=True)
sys.stdin.read()
"""


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found |= {child} | descendants(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_backends_die_with_a_killed_dev_server() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        # Two backends, each a shell and the Python process it starts (a moment later), and
        # the watchdog.
        backends = eventually_sync(
            lambda: found if len(found := descendants(server.pid)) >= 5 else None,
            timeout=20,
            message=lambda: f"processes under the dev server: {descendants(server.pid)}",
        )
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        eventually_sync(
            lambda: not any(alive(pid) for pid in backends),
            timeout=10,
            message=lambda: f"still running: {[pid for pid in backends if alive(pid)]}",
        )
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
