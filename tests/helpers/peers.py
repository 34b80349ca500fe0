"""Socket.IO clients that record everything they receive, to drive the example backends.

:class:`SioClient` is python-socketio's AsyncClient; :class:`NodeClient` is the real
socket.io-client in a Node subprocess (``tests/node/client.js``). The ``sio_client`` and
``node_client`` fixtures in ``tests/conftest.py`` build them and close them after the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import engineio.payload
import socketio

from tests.helpers.paths import NODE_DIR

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
        answer: list[Any] = ack["args"]
        return answer

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
