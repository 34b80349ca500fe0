"""An example session backend: a Socket.IO server that runs as one process per room.

Jamsocket / Plane start a session backend as a process with the environment variable ``PORT``
and put a proxy in front of it. The proxy strips the token from the URL, so the backend serves
Socket.IO at the default path ``/socket.io/``, and it passes the connect request's ``user`` and
``auth`` on as the request headers ``x-verified-username`` and ``x-verified-user-data`` (JSON).

This module is such a backend. The dev server runs it by default, and the tests and benchmarks
use it (``tests/node/backend.js`` is the same backend in Node, with identical behaviour)::

    PORT=8080 SESSION_BACKEND_ID=demo python -m jamsocket_rt.dev.example_backend

Environment: ``PORT`` (required; ``0`` picks a free port), ``SESSION_BACKEND_ID`` (default
``"local"``). It listens on 127.0.0.1, prints one line ``listening on PORT`` (the real port) to
stdout, answers ``GET /`` with 200 ``ok`` (a plain HTTP route to check proxies with), accepts
messages up to 64 MiB, and exits 0 on SIGTERM or SIGINT after closing every connection.

Events the server sends:

``welcome`` {"backend_id", "sid", "user", "user_data"}
    Sent to each socket as soon as it connects, before anything else: ``user`` is the
    ``x-verified-username`` header, ``user_data`` the parsed ``x-verified-user-data`` header
    (both ``null`` when absent; ``user_data`` is also ``null`` when it is not valid JSON).
    A client that attaches its listeners only after connecting loses this event.

Events the server handles ("with ack" means the client should ask for an acknowledgement):

``echo`` (*args), with ack
    Acknowledges with exactly the arguments it got (none, one or several, binary included).
``ping`` (*args)
    Emits ``pong`` with exactly the same arguments to the sender.
``broadcast`` (*args)
    Emits ``broadcast`` with the same arguments to every socket of this backend, sender included.
``record`` (value, ...)
    Appends the first argument (``null`` if none) to this backend's list of records: a sender
    of sequence numbers can then check for lost, duplicated or reordered messages.
``records``, with ack
    Acknowledges with the list of records.
``reset_records``, with ack
    Clears the list of records and acknowledges with ``true``.
``whoami``, with ack
    Acknowledges with {"sid", "backend_id", "headers", "auth"}: ``headers`` holds every
    ``x-verified-*`` header of the connection (lower-case names), ``auth`` is the Socket.IO
    ``auth`` payload the client connected with, or ``null``.
``sleep`` (seconds), with ack
    Waits that long, then acknowledges with ``true`` (other events are served meanwhile).
``emit_many`` ({"event", "count", "payload"}), with ack
    Emits ``event`` ``count`` times to the sender as fast as it can, each time with
    {"i": i, "payload": payload} (i from 0), then acknowledges with ``count``.
``exit`` (code)
    Ends the process at once with that exit code (default 1), like a crash: no goodbye.
``disconnect_me``
    The server disconnects this socket (a server-side disconnect, which clients don't retry).

Malformed arguments never crash the server: a missing or wrong-typed number counts as 0
(``exit``: 1), a missing event name of ``emit_many`` as ``"item"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

import engineio.exceptions
import engineio.packet
import engineio.payload
import socketio
from aiohttp import web

#: Engine.IO's limit for one message or polling request, large enough for benchmark payloads.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_HEADER_PREFIX = "HTTP_X_VERIFIED_"  # how the x-verified-* headers appear in the WSGI environ
_CLOSE_TIMEOUT = 1.0  # seconds to close connections on shutdown; vanished pollers never answer


def _number(value: Any, default: float = 0) -> float:
    # bool is an int subclass, but true seconds or counts would be a caller's mistake.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return default


class ExampleBackend:
    """The example backend's Socket.IO server and aiohttp application, not yet listening.

    ``app`` can be served by any aiohttp runner; :func:`serve` is the usual way.
    """

    def __init__(self, backend_id: str = "local") -> None:
        self.backend_id = backend_id
        #: The values of every ``record`` event, in arrival order.
        self.records: list[Any] = []
        # Per connection: the x-verified-* headers and the auth payload, for ``whoami``.
        self._headers: dict[str, dict[str, str]] = {}
        self._auth: dict[str, Any] = {}
        self._eio_sids: dict[str, str] = {}
        # python-engineio rejects a polling request that batches more than 16 packets, which
        # socket.io-client sends under load, and Node accepts; the byte limit is the real guard.
        # (A class attribute: this raises it for the whole process, clients included.)
        payload_class = engineio.payload.Payload
        payload_class.max_decode_packets = max(payload_class.max_decode_packets, MAX_MESSAGE_BYTES)
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            # Logging every packet costs more than the work itself, and engineio would log
            # connection URLs, which carry tokens behind a Jamsocket proxy.
            logger=False,
            engineio_logger=False,
            # Sends CONNECT before the connect handler runs, so ``welcome`` follows it at once.
            always_connect=True,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            cors_allowed_origins="*",
        )
        self.app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        self.sio.attach(self.app)
        self.app.router.add_get("/", self._index)
        # sio.on(...) as a call rather than a decorator: the decorator is untyped.
        for event, handler in {
            "connect": self._on_connect,
            "disconnect": self._on_disconnect,
            "echo": self._on_echo,
            "ping": self._on_ping,
            "broadcast": self._on_broadcast,
            "record": self._on_record,
            "records": self._on_records,
            "reset_records": self._on_reset_records,
            "whoami": self._on_whoami,
            "sleep": self._on_sleep,
            "emit_many": self._on_emit_many,
            "exit": self._on_exit,
            "disconnect_me": self._on_disconnect_me,
        }.items():
            self.sio.on(event, handler)

    async def close(self) -> None:
        """Closes every connection and stops the Socket.IO background task."""
        # engineio's disconnect() of all clients fails on an empty set of clients, and it waits
        # for each polling client to fetch its close packet, which a vanished one never does.
        if self.sio.eio.sockets:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.sio.eio.disconnect(), _CLOSE_TIMEOUT)
        await self.sio.shutdown()

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        headers = {
            key[len("HTTP_") :].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith(_HEADER_PREFIX)
        }
        self._headers[sid] = headers
        self._auth[sid] = auth
        self._eio_sids[sid] = self.sio.manager.eio_sid_from_sid(sid, "/")
        user_data: Any = None
        raw = headers.get("x-verified-user-data")
        if raw is not None:
            try:
                user_data = json.loads(raw)
            except ValueError:
                user_data = None
        welcome = {
            "backend_id": self.backend_id,
            "sid": sid,
            "user": headers.get("x-verified-username"),
            "user_data": user_data,
        }
        await self.sio.emit("welcome", welcome, to=sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._headers.pop(sid, None)
        self._auth.pop(sid, None)
        eio_sid = self._eio_sids.pop(sid, None)
        # When a polling client closes, python-engineio leaves its pending GET hanging until
        # the poll times out (the python client's disconnect() then takes 30 s); Node answers
        # it at once. A NOOP answers it; clients ignore NOOPs on any transport.
        with contextlib.suppress(KeyError, engineio.exceptions.EngineIOError):
            if eio_sid is not None and self.sio.eio.transport(eio_sid) == "polling":
                noop = engineio.packet.Packet(engineio.packet.NOOP)
                await self.sio.eio.send_packet(eio_sid, noop)

    async def _on_echo(self, sid: str, *args: Any) -> tuple[Any, ...]:
        # A tuple is acknowledged as that many arguments, even none or one.
        return args

    async def _on_ping(self, sid: str, *args: Any) -> None:
        await self.sio.emit("pong", args, to=sid)

    async def _on_broadcast(self, sid: str, *args: Any) -> None:
        await self.sio.emit("broadcast", args)

    async def _on_record(self, sid: str, *args: Any) -> None:
        # Appends before any await: handlers start in arrival order, so records keep it.
        self.records.append(args[0] if args else None)

    async def _on_records(self, sid: str, *args: Any) -> list[Any]:
        return list(self.records)

    async def _on_reset_records(self, sid: str, *args: Any) -> bool:
        self.records.clear()
        return True

    async def _on_whoami(self, sid: str, *args: Any) -> dict[str, Any]:
        return {
            "sid": sid,
            "backend_id": self.backend_id,
            "headers": self._headers.get(sid, {}),
            "auth": self._auth.get(sid),
        }

    async def _on_sleep(self, sid: str, seconds: Any = 0, *args: Any) -> bool:
        await asyncio.sleep(max(0.0, _number(seconds)))
        return True

    async def _on_emit_many(self, sid: str, spec: Any = None, *args: Any) -> int:
        spec = spec if isinstance(spec, dict) else {}
        event = spec.get("event")
        event = event if isinstance(event, str) else "item"
        count = max(0, int(_number(spec.get("count"))))
        payload = spec.get("payload")
        for i in range(count):
            await self.sio.emit(event, {"i": i, "payload": payload}, to=sid)
        return count

    async def _on_exit(self, sid: str, code: Any = 1, *args: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit, not sys.exit: a crash skips cleanup and closes no connection politely.
        os._exit(int(_number(code, 1)))

    async def _on_disconnect_me(self, sid: str, *args: Any) -> None:
        await self.sio.disconnect(sid)


async def serve(port: int, backend_id: str = "local", host: str = "127.0.0.1") -> None:
    """Serves an :class:`ExampleBackend` until SIGTERM or SIGINT, then closes it."""
    backend = ExampleBackend(backend_id)
    # The shutdown timeout only bounds requests that outlive backend.close().
    runner = web.AppRunner(backend.app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        print(f"listening on {runner.addresses[0][1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The loop's signal handlers run as ordinary callbacks, where anything is safe.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await backend.close()
    finally:
        await runner.cleanup()


def main() -> None:
    """Entry point: reads PORT and SESSION_BACKEND_ID and serves until SIGTERM."""
    raw_port = os.environ.get("PORT")
    if not raw_port:
        sys.exit("example_backend: the environment variable PORT is required")
    try:
        port = int(raw_port)
    except ValueError:
        sys.exit(f"example_backend: PORT must be a number, not {raw_port!r}")
    asyncio.run(serve(port, os.environ.get("SESSION_BACKEND_ID") or "local"))


if __name__ == "__main__":
    main()
