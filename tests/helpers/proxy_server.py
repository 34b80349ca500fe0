"""A real HTTP proxy for the tests: proxy.py (from PyPI) in a process of its own.

It forwards plain HTTP requests and opens CONNECT tunnels, optionally behind Basic
authentication, and logs one access line per request or tunnel: what a proxy can read.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.polling import eventually, eventually_sync


class ProxyServer:
    """A running proxy.py: its URL (with the credentials, if any) and what it has logged."""

    def __init__(self, port: int, log: Path, credentials: str | None) -> None:
        self.port = port
        self.where = f"127.0.0.1:{port}"
        self.url = f"http://{credentials + '@' if credentials else ''}127.0.0.1:{port}"
        self._log = log

    def log(self) -> str:
        """Everything the proxy has logged so far (its access lines: method, host, path)."""
        return self._log.read_text(errors="replace")

    async def logged(self, *texts: str) -> str:
        """The log once it holds every one of ``texts`` (an access line is written when its
        request or tunnel ends, a moment after the client is done)."""
        return await eventually(
            lambda: self._holding(texts),
            message=lambda: f"the proxy never logged {texts}: {self.log()!r}",
        )

    def logged_sync(self, *texts: str) -> str:
        """:meth:`logged` for synchronous tests."""
        return eventually_sync(
            lambda: self._holding(texts),
            message=lambda: f"the proxy never logged {texts}: {self.log()!r}",
        )

    def _holding(self, texts: tuple[str, ...]) -> str | None:
        log = self.log()
        return log if all(text in log for text in texts) else None


@contextlib.contextmanager
def proxy_server(tmp_path: Path, *, credentials: str | None = None) -> Iterator[ProxyServer]:
    """Starts proxy.py on 127.0.0.1 (``credentials``: ``user:password`` it demands)."""
    pytest.importorskip("proxy", reason="proxy.py (a dev dependency) is not installed")
    tmp_path.mkdir(parents=True, exist_ok=True)
    port_file, log = tmp_path / "proxy.port", tmp_path / "proxy.log"
    command = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"]
    command += ["--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1"]
    command += ["--log-file", str(log)]
    if credentials:
        command += ["--basic-auth", credentials]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("proxy.py did not start")
            time.sleep(0.05)
        yield ProxyServer(int(port_file.read_text()), log, credentials)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
