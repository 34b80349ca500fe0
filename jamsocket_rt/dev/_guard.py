"""Backends do not outlive their dev server, however it ends (SIGKILL included).

``atexit`` kills the backends' process groups when the dev server's process exits normally.
A process killed with SIGKILL runs nothing, so a small watchdog process holds the other end of
a pipe: the dev server writes the process group of each backend it starts (``+PGID``) and
ends (``-PGID``); when the pipe closes, which the kernel does as the dev server's process
dies, the watchdog kills the groups still listed. A parent-death signal would reach only a
backend's first process (``/bin/sh``), not what it started.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

__all__ = ["GroupGuard"]

# The watchdog: stdlib only, no import of this package (it starts in milliseconds).
_WATCHDOG = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    sign, number = line[:1], line[1:].strip()
    if number.isdigit():
        (groups.add if sign == "+" else groups.discard)(int(number))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class GroupGuard:
    """The watchdog of a process's backend groups, started with the first group."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def add(self, pgid: int) -> None:
        """Lists a backend's process group (starting the watchdog if needed)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # not killed with the dev server's group
                )
            self._send(f"+{pgid}\n")

    def discard(self, pgid: int) -> None:
        """Unlists a process group that ended (or was killed by the dev server itself)."""
        with self._lock:
            if self._process is not None:
                self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):  # a watchdog that died: the next add restarts it
            self._process.stdin.write(line.encode())
            self._process.stdin.flush()
