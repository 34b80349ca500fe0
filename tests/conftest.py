"""Shared fixtures: example session backends (Python or Node) and real Socket.IO peers.

Backends
    ``start_backend(flavour, ...)`` / ``running_backend(...)`` start the example backend
    (``jamsocket_rt/dev/example_backend.py`` or ``tests/node/backend.js``, same protocol) on a
    free port and return a :class:`BackendProcess` once it accepts connections.
    Fixtures: ``backend_flavour`` (session, params ``python`` and ``node``), ``example_backend``
    (module, one backend per flavour), ``python_backend`` / ``node_backend`` (module),
    ``spawn_backend`` (function: a factory, for tests that kill their backend).

Peers
    ``sio_client`` (factory of :class:`SioClient`, a python-socketio AsyncClient that records
    everything it receives) and ``node_client`` (factory of :class:`NodeClient`, a real
    socket.io-client in Node driven through ``tests/node/client.js``).

Node
    ``node_bin``, ``node_modules_dir`` and ``require_node`` skip the test, with the reason,
    when node or ``tests/node/node_modules`` is missing (``./run test`` installs them).

Every process a fixture starts is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import engineio.payload
import pytest
import socketio

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = REPO_ROOT / "tests" / "node"
NODE_MODULES = NODE_DIR / "node_modules"
BACKEND_FLAVOURS = ("python", "node")

_LISTENING = re.compile(rb"listening on (\d+)")


# --------------------------------------------------------------------------- Node availability


def node_missing_reason() -> str | None:
    """Why the Node peers cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed: the Node peers (tests/node) are skipped"
    for package in ("socket.io", "socket.io-client"):
        if not (NODE_MODULES / package / "package.json").is_file():
            return f"{NODE_MODULES} lacks {package}: run `npm ci` in tests/node (./run test does)"
    return None


@pytest.fixture(scope="session")
def node_bin() -> str:
    """The path of the node executable; skips the test when there is none."""
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the Node peers (tests/node) are skipped")
    return path


@pytest.fixture(scope="session")
def node_modules_dir() -> Path:
    """tests/node/node_modules with socket.io and socket.io-client; skips when not installed."""
    for package in ("socket.io", "socket.io-client"):
        if not (NODE_MODULES / package / "package.json").is_file():
            pytest.skip(f"{NODE_MODULES} lacks {package}: run `npm ci` in tests/node")
    return NODE_MODULES


@pytest.fixture(scope="session")
def require_node(node_bin: str, node_modules_dir: Path) -> str:
    """Skips the test unless node and the Node peers are installed; gives the node path."""
    return node_bin


# --------------------------------------------------------------------------- backends


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
    try:
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(backend.log().encode())
            if match is not None:
                backend.port = int(match.group(1))
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", backend.port), timeout=1.0),
                ):
                    return backend
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {flavour} backend exited with {proc.returncode} before listening:\n"
                    + backend.log()
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the {flavour} backend did not listen within {timeout} s:\n" + backend.log()
                )
            time.sleep(0.01)
    except BaseException:
        backend.stop()
        raise


@contextlib.contextmanager
def running_backend(flavour: str = "python", **kwargs: Any) -> Iterator[BackendProcess]:
    """:func:`start_backend` as a context manager that stops the backend on exit."""
    backend = start_backend(flavour, **kwargs)
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture(scope="session", params=BACKEND_FLAVOURS)
def backend_flavour(request: pytest.FixtureRequest) -> str:
    """``"python"`` then ``"node"``: runs the test against both example backends.

    Session-scoped so that module-scoped backends can depend on it; the Node run is skipped
    when Node is not installed.
    """
    flavour: str = request.param
    if flavour == "node":
        request.getfixturevalue("require_node")
    return flavour


@pytest.fixture(scope="module")
def example_backend(backend_flavour: str) -> Iterator[BackendProcess]:
    """One backend of each flavour per test module, with backend id ``example-{flavour}``.

    Shared by the module's tests: don't kill it (use ``spawn_backend``), and reset what you
    rely on (``reset_records``).
    """
    with running_backend(backend_flavour, backend_id=f"example-{backend_flavour}") as backend:
        yield backend


@pytest.fixture(scope="module")
def python_backend() -> Iterator[BackendProcess]:
    """A Python example backend shared by the module (backend id ``example-python``)."""
    with running_backend("python", backend_id="example-python") as backend:
        yield backend


@pytest.fixture(scope="module")
def node_backend(require_node: str) -> Iterator[BackendProcess]:
    """A Node example backend shared by the module (backend id ``example-node``)."""
    with running_backend("node", backend_id="example-node") as backend:
        yield backend


@pytest.fixture
def spawn_backend() -> Iterator[Callable[..., BackendProcess]]:
    """A factory ``spawn_backend(flavour="python", *, backend_id="local", env=None)``.

    For tests that end their backend themselves; whatever is left runs is stopped afterwards.
    """
    started: list[BackendProcess] = []

    def spawn(flavour: str = "python", **kwargs: Any) -> BackendProcess:
        if flavour == "node" and node_missing_reason() is not None:
            pytest.skip(node_missing_reason() or "")
        backend = start_backend(flavour, **kwargs)
        started.append(backend)
        return backend

    yield spawn
    for backend in started:
        backend.stop()


# --------------------------------------------------------------------------- JSON with bytes


def to_wire(value: Any) -> Any:
    """Encodes bytes as ``{"$bytes": base64}`` for tests/node/client.js (JSON has no bytes)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any) -> Any:
    """Decodes what :func:`to_wire` encodes."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bytes"), str):
            return base64.b64decode(value["$bytes"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- Python peer


class SioClient:
    """A python-socketio AsyncClient that records every event and acknowledgement it gets.

    ``events`` lists ``(event, args)`` in arrival order, ``welcome`` included (the handler is
    attached before connecting, so nothing is missed). Build it with the ``sio_client`` fixture.
    """

    def __init__(self, **client_kwargs: Any) -> None:
        # python-engineio refuses a polling response of more than 16 packets, which any server
        # sends after a burst of events; the byte limit is the real guard (process-wide).
        payload_class = engineio.payload.Payload
        payload_class.max_decode_packets = max(payload_class.max_decode_packets, 64 * 1024 * 1024)
        self.sio = socketio.AsyncClient(logger=False, engineio_logger=False, **client_kwargs)
        self.events: list[tuple[str, list[Any]]] = []
        self.disconnect_reasons: list[Any] = []
        self._changed = asyncio.Condition()
        self.sio.on("*", self._on_any)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event: str, *args: Any) -> None:
        async with self._changed:
            self.events.append((event, list(args)))
            self._changed.notify_all()

    async def _on_disconnect(self, reason: Any = None) -> None:
        async with self._changed:
            self.disconnect_reasons.append(reason)
            self._changed.notify_all()

    @property
    def sid(self) -> str | None:
        """The Socket.IO session id while connected."""
        sid: str | None = self.sio.get_sid()
        return sid

    async def connect(
        self,
        url: str,
        *,
        transports: Sequence[str] = ("websocket",),
        socketio_path: str = "socket.io",
        headers: dict[str, str] | None = None,
        auth: Any = None,
        wait_timeout: float = 10.0,
    ) -> None:
        """Connects (the arguments are python-socketio's)."""
        await self.sio.connect(
            url,
            transports=list(transports),
            socketio_path=socketio_path,
            headers=headers or {},
            auth=auth,
            wait_timeout=wait_timeout,
        )

    def received(self, event: str) -> list[list[Any]]:
        """The argument lists of every ``event`` received so far."""
        return [args for name, args in self.events if name == event]

    async def wait_event(self, event: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Waits until ``count`` ``event``s arrived; returns the args of the ``count``-th."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.received(event)) >= count), timeout
            )
        return self.received(event)[count - 1]

    async def wait_disconnect(self, timeout: float = 10.0) -> Any:
        """Waits for a disconnect and returns its reason."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.disconnect_reasons), timeout)
        return self.disconnect_reasons[0]

    async def emit(self, event: str, *args: Any) -> None:
        """Emits ``event`` with exactly these arguments (none, one or several)."""
        await self.sio.emit(event, args)

    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> list[Any]:
        """Emits with an acknowledgement and returns the ack's arguments as a list."""
        acked: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        def on_ack(*ack_args: Any) -> None:
            if not acked.done():
                acked.set_result(list(ack_args))

        await self.sio.emit(event, args, callback=on_ack)
        return await asyncio.wait_for(acked, timeout)

    async def disconnect(self) -> None:
        """Disconnects (a no-op when not connected)."""
        await self.sio.disconnect()


@pytest.fixture
async def sio_client() -> AsyncIterator[Callable[..., Awaitable[SioClient]]]:
    """A factory ``await sio_client(url, **connect_kwargs) -> SioClient``, already connected.

    ``url=None`` returns it unconnected; ``client_kwargs={...}`` go to ``AsyncClient``.
    Every client is disconnected at teardown.
    """
    clients: list[SioClient] = []

    async def make(
        url: str | None, *, client_kwargs: dict[str, Any] | None = None, **connect_kwargs: Any
    ) -> SioClient:
        client = SioClient(**(client_kwargs or {}))
        clients.append(client)
        if url is not None:
            await client.connect(url, **connect_kwargs)
        return client

    yield make
    for client in clients:
        await client.disconnect()


# --------------------------------------------------------------------------- Node peer


class NodeClient:
    """A real socket.io-client (tests/node/client.js) in a Node subprocess.

    Commands go to its stdin, and everything it reports (see client.js) is collected in
    ``messages``: dicts with ``type`` ``connect``, ``connect_error``, ``disconnect``,
    ``event`` (``event``, ``args``), ``ack``, ``error`` or ``closed``. Bytes are decoded.
    Build it with the ``node_client`` fixture, or ``await NodeClient.start(...)`` and
    ``await close()``.
    """

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.messages: list[dict[str, Any]] = []
        self.stderr = b""
        self._changed = asyncio.Condition()
        self._eof = False
        self._ids = itertools.count(1)
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        url: str,
        path: str = "/socket.io/",
        transports: Sequence[str] = ("websocket",),
        options: dict[str, Any] | None = None,
        *,
        wait_connected: bool = True,
        node: str = "node",
        timeout: float = 10.0,
    ) -> NodeClient:
        """Starts client.js; by default waits until it connected (raises if it can't).

        ``options`` is merged into socket.io-client's ``io()`` options (``auth``,
        ``extraHeaders``, ``reconnection``...). Empty ``transports`` means the library's.
        """
        proc = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "client.js"),
            url,
            path,
            ",".join(transports),
            json.dumps(options or {}),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        client = cls(proc)
        if wait_connected:
            try:
                first = await client.wait_for(
                    lambda m: m["type"] in ("connect", "connect_error"), timeout
                )
                if first["type"] == "connect_error":
                    raise ConnectionError(f"the Node client could not connect: {first}")
            except BaseException:
                await client.close()
                raise
        return client

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            async for line in self.proc.stdout:
                if line.strip():
                    message = from_wire(json.loads(line))
                    async with self._changed:
                        self.messages.append(message)
                        self._changed.notify_all()
        finally:
            async with self._changed:
                self._eof = True
                self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: condition() or self._eof), timeout
            )
            if condition():
                return
        raise RuntimeError(
            f"the Node client exited (code {self.proc.returncode}) before the expected "
            f"message; messages: {self.messages}; stderr: {self.stderr.decode()}"
        )

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first message ever received that matches, waiting for it if need be."""
        await self._wait_until(lambda: any(predicate(m) for m in self.messages), timeout)
        return next(m for m in self.messages if predicate(m))

    @property
    def sid(self) -> str | None:
        """The socket id of the last connect, or None."""
        ids = [m["id"] for m in self.messages if m["type"] == "connect"]
        return ids[-1] if ids else None

    def received(self, event: str) -> list[list[Any]]:
        """The argument lists of every ``event`` received so far."""
        return [m["args"] for m in self.messages if m["type"] == "event" and m["event"] == event]

    async def wait_event(self, event: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """Waits until ``count`` ``event``s arrived; returns the args of the ``count``-th."""
        await self._wait_until(lambda: len(self.received(event)) >= count, timeout)
        return self.received(event)[count - 1]

    async def send(self, command: dict[str, Any]) -> None:
        """Sends one raw command (see client.js)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(to_wire(command)).encode() + b"\n")
        await self.proc.stdin.drain()

    async def emit(self, event: str, *args: Any) -> None:
        """Emits ``event`` with these arguments."""
        await self.send({"op": "emit", "event": event, "args": list(args)})

    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> list[Any]:
        """Emits with an acknowledgement and returns the ack's arguments.

        Raises TimeoutError when no ack comes within ``timeout`` (measured by socket.io-client).
        """
        call_id = next(self._ids)
        await self.send(
            {
                "op": "call",
                "id": call_id,
                "event": event,
                "args": list(args),
                "timeout": int(timeout * 1000),
            }
        )
        ack = await self.wait_for(
            lambda m: m["type"] == "ack" and m["id"] == call_id, timeout + 5.0
        )
        if "error" in ack:
            raise TimeoutError(f"no ack for {event!r} within {timeout} s")
        args: list[Any] = ack["args"]
        return args

    async def close(self, timeout: float = 5.0) -> int:
        """Closes the socket, ends the process (killing it if it hangs) and returns its code."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await self.send({"op": "close"})
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        # The pipes reach EOF once the process is gone; awaiting the readers closes them cleanly.
        await asyncio.gather(*self._readers, return_exceptions=True)
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@pytest.fixture
async def node_client(require_node: str) -> AsyncIterator[Callable[..., Awaitable[NodeClient]]]:
    """A factory ``await node_client(url, path="/socket.io/", transports=("websocket",),
    options=None, *, wait_connected=True) -> NodeClient``; all are closed at teardown."""
    clients: list[NodeClient] = []

    async def make(url: str, *args: Any, **kwargs: Any) -> NodeClient:
        client = await NodeClient.start(url, *args, node=require_node, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


# --------------------------------------------------------------------------- dev server


@pytest.fixture
async def dev(backend_flavour: str) -> AsyncIterator[DevServer]:
    """A DevServer running the example backend of ``backend_flavour`` (python, then node).

    Test modules that need another backend or options define their own ``dev``.
    """
    async with DevServer(backend=backend_command(backend_flavour), quiet=True) as server:
        yield server


@pytest.fixture
async def api(dev: DevServer) -> AsyncIterator[jrt.Jamsocket]:
    """A platform API client of the ``dev`` server."""
    async with jrt.Jamsocket.dev_server(dev.api_url) as client:
        yield client
