"""The example session backends (Python or Node, same protocol) as processes on a free port.

``jamsocket_rt/dev/example_backend.py`` and ``tests/node/backend.js``; the fixtures that use
these (``example_backend``, ``spawn_backend``...) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from tests.helpers.paths import NODE_DIR, REPO_ROOT
from tests.helpers.polling import eventually_sync

BACKEND_FLAVOURS = ("python", "node")

_LISTENING = re.compile(rb"listening on (\d+)")


def backend_command(flavour: str) -> list[str]:
    """The command line that runs the example backend of that flavour."""
    if flavour == "python":
        return [sys.executable, "-m", "jamsocket_rt.dev.example_backend"]
    if flavour == "node":
        return [shutil.which("node") or "node", str(NODE_DIR / "backend.js")]
    raise ValueError(f"unknown backend flavour {flavour!r}, expected one of {BACKEND_FLAVOURS}")


class BackendProcess:
    """A running example backend process (see :func:`start_backend`)."""

    def __init__(
        self, flavour: str, backend_id: str, proc: subprocess.Popen[bytes], log: IO[bytes]
    ) -> None:
        self.flavour = flavour
        self.backend_id = backend_id
        self.proc = proc
        self.port = 0
        # An unlinked temporary file holds stdout and stderr: nothing can fill up and block
        # the backend, and nothing is left on disk.
        self._log = log

    @property
    def url(self) -> str:
        """The origin to connect to, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.proc.poll()

    def log(self) -> str:
        """Everything the backend wrote to stdout and stderr so far."""
        fd = self._log.fileno()
        # pread leaves the file offset alone, which the child shares with us.
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def wait(self, timeout: float = 10.0) -> int:
        """Waits for the process to exit by itself and returns its exit code."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int:
        """Sends SIGTERM (SIGKILL after ``timeout``), waits for the exit, returns the code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        assert self.proc.returncode is not None
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<BackendProcess {self.flavour} {self.backend_id!r} port={self.port}>"


def start_backend(
    flavour: str = "python",
    *,
    backend_id: str = "local",
    env: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> BackendProcess:
    """Starts the example backend on a free port; returns once it accepts connections.

    The backend gets ``PORT=0`` and reports the port the OS picked, so two backends (or two
    xdist workers) never race for one port. ``env`` adds to the environment. The caller must
    call ``stop()``; prefer :func:`running_backend` or the fixtures.

    Raises:
        RuntimeError: the backend exited before it listened.
        AssertionError: it did not listen within ``timeout`` seconds.
    """
    full_env = {**os.environ, **(env or {}), "PORT": "0", "SESSION_BACKEND_ID": backend_id}
    log = tempfile.TemporaryFile()  # noqa: SIM115 (BackendProcess.stop closes it)
    try:
        proc = subprocess.Popen(
            backend_command(flavour),
            cwd=REPO_ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    except BaseException:
        log.close()
        raise
    backend = BackendProcess(flavour, backend_id, proc, log)

    def accepting() -> int | None:
        """The port once the backend has said it and accepts a connection there."""
        match = _LISTENING.search(backend.log().encode())
        if match is not None:
            port = int(match.group(1))
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1.0),
            ):
                return port
        if proc.poll() is not None:
            raise RuntimeError(
                f"the {flavour} backend exited with {proc.returncode} before listening:\n"
                + backend.log()
            )
        return None

    try:
        backend.port = eventually_sync(
            accepting,
            timeout=timeout,
            interval=0.01,
            message=lambda: f"the {flavour} backend did not listen:\n" + backend.log(),
        )
    except BaseException:
        backend.stop()
        raise
    return backend


@contextlib.contextmanager
def running_backend(flavour: str = "python", **kwargs: Any) -> Iterator[BackendProcess]:
    """:func:`start_backend` as a context manager that stops the backend on exit."""
    backend = start_backend(flavour, **kwargs)
    try:
        yield backend
    finally:
        backend.stop()
