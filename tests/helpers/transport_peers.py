"""Real peers for the transport tests: Socket.IO servers, a 410 server, a stalling TCP proxy.

Both Socket.IO servers speak the same small "peer protocol" (documented in
``tests/node/peer_server.js``): the Python one is a python-socketio AsyncServer on aiohttp in
the test's own event loop, the Node one is the real socket.io 4 server in a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import queue
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from tests.helpers.paths import NODE_DIR, NODE_MODULES

NODE_PEER = NODE_DIR / "peer_server.js"

#: A path with a token segment, as the Jamsocket proxy serves it.
TOKEN_PATH = "/SOMETOKEN/socket.io/"


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_MODULES / "socket.io").is_dir()


# --------------------------------------------------------------------------- Python peer


@contextlib.contextmanager
def python_peer(
    path: str = TOKEN_PATH,
    ping_interval: float = 25.0,
    ping_timeout: float = 20.0,
    max_http_buffer_size: int = 64 * 1024 * 1024,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[str]:
    """A python-socketio server on aiohttp, in a thread with its own loop; yields its origin.

    With ``ssl_context`` it serves HTTPS (and the origin says so).

    Its own thread keeps the server's tasks out of the test's loop (the tests count tasks)
    and makes it as separate from the client as the Node peer is.
    """
    started: queue.Queue[tuple[str, asyncio.AbstractEventLoop, asyncio.Event] | BaseException]
    started = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        try:
            sio, app = _python_app(path, ping_interval, ping_timeout, max_http_buffer_size)
            # A stalled client must not hold the shutdown back for aiohttp's default 60 s.
            runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
            await site.start()
        except BaseException as exc:
            started.put(exc)
            raise
        host, port = runner.addresses[0][:2]
        scheme = "http" if ssl_context is None else "https"
        started.put((f"{scheme}://{host}:{port}", asyncio.get_running_loop(), stop))
        await stop.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sio.shutdown(), 2.0)
        await runner.cleanup()

    # asyncio.run cancels and awaits whatever the server leaves running (ping tasks...).
    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    result = started.get(timeout=10)
    if isinstance(result, BaseException):
        thread.join()
        raise result
    origin, loop, stop = result
    try:
        yield origin
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def _python_app(
    path: str, ping_interval: float, ping_timeout: float, max_http_buffer_size: int
) -> tuple[Any, web.Application]:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    auths: dict[str, Any] = {}
    headers: dict[str, Any] = {}
    background: set[asyncio.Task[Any]] = set()

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("reject"):
            raise socketio.exceptions.ConnectionRefusedError("rejected by peer", {"reason": "test"})
        auths[sid] = auth or None
        headers[sid] = environ.get("HTTP_X_PEER_TEST")
        # python-socketio sends this before its CONNECT answer: clients must hold it back.
        await sio.emit("welcome", {"sid": sid}, to=sid)

    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def push(sid: str, name: str, *args: Any) -> None:
        await sio.emit(name, args, to=sid)

    async def ask(sid: str, name: str, *args: Any) -> None:
        def answered(*answer: Any) -> None:
            task = asyncio.ensure_future(sio.emit("answer", list(answer), to=sid))
            background.add(task)
            task.add_done_callback(background.discard)

        await sio.emit(name, args, to=sid, callback=answered)

    async def whoami(sid: str) -> dict[str, Any]:
        return {"sid": sid, "auth": auths.get(sid), "header": headers.get(sid)}

    async def kick(sid: str) -> None:
        await sio.disconnect(sid)

    # sio.on(...) as a call rather than a decorator: python-socketio's decorators are untyped.
    handlers: dict[str, Callable[..., Awaitable[Any]]] = {
        "connect": connect,
        "echo": echo,
        "push": push,
        "ask": ask,
        "whoami": whoami,
        "kick": kick,
    }
    for event, handler in handlers.items():
        sio.on(event, handler)

    app = web.Application()
    sio.attach(app, socketio_path=path)
    return sio, app


# --------------------------------------------------------------------------- Node peer


class NodePeer:
    """The real socket.io 4 server (tests/node/peer_server.js) in a subprocess."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("path", TOKEN_PATH)
        self.proc = subprocess.Popen(
            ["node", str(NODE_PEER), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the Node peer did not start: {line!r}")
        self.origin = f"http://127.0.0.1:{int(line.split()[-1])}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def node_peer(**options: Any) -> Iterator[str]:
    """The Node peer with these socket.io options; yields its origin."""
    peer = NodePeer(**options)
    try:
        yield peer.origin
    finally:
        peer.stop()


# --------------------------------------------------------------------------- other servers


def self_signed_certificate(directory: Path) -> Path | None:
    """A certificate and key for 127.0.0.1 in one PEM file, or None without the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    pem = directory / "peer.pem"
    command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(pem)]
    command += ["-out", str(directory / "cert.pem"), "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    pem.write_text(pem.read_text() + (directory / "cert.pem").read_text())
    return pem


@contextlib.asynccontextmanager
async def gone_server() -> AsyncIterator[str]:
    """An HTTP server answering 410 Gone to everything, as the proxy does for a dead token."""

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410, text="gone")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gone)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts TCP connections and never answers (a handshake that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


class TcpProxy:
    """Forwards TCP connections to ``upstream``; :meth:`stall` stops it reading either side.

    A stalled proxy is a black hole: nothing gets through, nothing is closed, and whatever the
    client writes piles up in socket buffers.
    """

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rsplit(":", 1)
        self._running = asyncio.Event()
        self._running.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.origin = ""

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.origin = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    def stall(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = self._upstream[0].split("//")[-1]
        up_reader, up_writer = await asyncio.open_connection(host, int(self._upstream[1]))
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await self._running.wait()
                data = await source.read(65536)
                await self._running.wait()
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        sink.close()


# --------------------------------------------------------------------------- scripted websocket

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SIO_OPEN = '0{"sid":"eio","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'


def server_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """One websocket frame as a server would send it (unmasked unless ``mask`` is given)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        head = bytes((first, length | (0x80 if mask else 0)))
    elif length < 65536:
        head = bytes((first, 126 | (0x80 if mask else 0))) + length.to_bytes(2, "big")
    else:
        head = bytes((first, 127 | (0x80 if mask else 0))) + length.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def text(data: str) -> bytes:
    """A text frame from the server."""
    return server_frame(0x1, data.encode())


class ScriptedPeer:
    """One accepted websocket connection of :func:`scripted_ws_server`, for a test to drive."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.request = b""

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame from the client (unmasked): (opcode, payload). Checks the mask."""
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        assert head[1] & 0x80, "client frames must be masked"
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        mask = await self.reader.readexactly(4)
        data = await self.reader.readexactly(length)
        return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    async def read_text(self, timeout: float = 5.0) -> str:
        opcode, payload = await self.read_frame(timeout)
        assert opcode == 0x1, (opcode, payload)
        return payload.decode()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def stay_open(self) -> None:
        """Keeps the connection open and answers nothing, until the client closes it.

        What the client sends meanwhile is read and ignored. (The server's shutdown cancels
        this when the test ends first.)
        """
        while await self.reader.read(65536):
            pass

    async def handshake(self, sid: str = "scripted") -> None:
        """Engine.IO OPEN, the client's CONNECT, and the CONNECT answer."""
        self.send(text(SIO_OPEN))
        assert (await self.read_text()).startswith("40")
        self.send(text("40" + json.dumps({"sid": sid})))


@contextlib.asynccontextmanager
async def scripted_ws_server(
    script: Callable[[ScriptedPeer], Awaitable[None]],
    *,
    status: bytes = b"101 Switching Protocols",
    accept: str | None = None,
    after_head: bytes = b"",
) -> AsyncIterator[str]:
    """A websocket server that answers the upgrade, then runs ``script`` on the connection.

    ``accept`` replaces the correct Sec-WebSocket-Accept; ``after_head`` is sent in the same
    write as the response head. Yields the origin.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = ScriptedPeer(reader, writer)
        try:
            peer.request = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in peer.request.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            digest = hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest()
            answer = accept if accept is not None else base64.b64encode(digest).decode()
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + answer.encode() + b"\r\n\r\n" + after_head
            )
            await script(peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def accept_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accept_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


class Recorder:
    """A TransportListener that records what it is told.

    Args:
        respond: when set, every event that asks for an ack is acknowledged at once with
            ``respond(name, args)``.
    """

    def __init__(self, respond: Callable[[str, list[Any]], Sequence[Any]] | None = None) -> None:
        self.events: list[tuple[str, list[Any], Any]] = []
        self.losses: list[BaseException | None] = []
        self._respond = respond
        self._changed = asyncio.Event()

    def transport_event(self, event: str, args: list[Any], ack: Any) -> None:
        self.events.append((event, args, ack))
        if ack is not None and self._respond is not None:
            ack(self._respond(event, args))
        self._changed.set()

    def transport_lost(self, error: BaseException | None) -> None:
        self.losses.append(error)
        self._changed.set()

    def received(self, name: str) -> list[list[Any]]:
        return [args for event, args, _ in self.events if event == name]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met; events={self.events} losses={self.losses}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_event(self, name: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        await self.wait_until(lambda: len(self.received(name)) >= count, timeout)
        return self.received(name)[count - 1]

    async def wait_lost(self, timeout: float = 5.0) -> BaseException | None:
        await self.wait_until(lambda: bool(self.losses), timeout)
        return self.losses[0]
