"""python-socketio's client, subclassed where the Transport contract needs more of it.

python-socketio tells a catch-all handler nothing about whether the server asked for an
acknowledgement, and python-engineio cannot stop reading: :class:`AsyncClient` notes the first
in a context variable (:data:`ack_wanted`), :class:`EngineIOClient` waits while
``resume`` is set. ``tests/test_transports.py`` fails if these internals stop loading.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import types
from collections.abc import Callable
from typing import Any

import aiohttp
import engineio
import socketio

from ..protocol.msgpack import MsgpackCodec, ext_hook
from ..protocol.packets import (
    Packet,
    PacketType,
    StdlibJsonCodec,
    decode_packet,
    encode_packet,
    reconstruct,
)
from ..protocol.trace import Direction
from ._trace import DEBUG, WIRE, trace_packet
from .base import ConnectTarget
from .wsconnection import CLOSE_TIMEOUT

#: How many Engine.IO packets one batch hands python-socketio (its server refuses more in one
#: long-polling payload).
MAX_PACKETS_PER_BATCH = 16

# python-engineio refuses a long-polling payload of more than 16 packets, and drops the
# connection over it; a socket.io server sends everything it buffered between two polls in one
# payload, so a busy Node server exceeds that at once. The limit is a class attribute shared by
# python-engineio's servers: rather than raise it for them too (a server in the same process
# would then accept 100,000 packets per POST), the client module decodes with a subclass of its
# own (see allow_large_polls); the server's maxPayload still bounds the payload's size.
MAX_PACKETS_PER_POLL = 100_000


class _ClientPayload(engineio.payload.Payload):  # type: ignore[misc]
    """python-engineio's Payload with the client's own limit of packets per long poll."""

    max_decode_packets = MAX_PACKETS_PER_POLL


def allow_large_polls() -> None:
    """Makes python-engineio's client (only) decode polls of up to MAX_PACKETS_PER_POLL packets.

    Its client module reads ``payload.Payload``: that name, in that module, becomes the
    subclass; ``engineio.payload.Payload`` and the servers keep their limit. Idempotent.
    """
    import engineio.async_client as client_module

    if client_module.payload.Payload is not _ClientPayload:
        client_module.payload = types.SimpleNamespace(Payload=_ClientPayload)


ack_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("ack_wanted", default=False)


class EngineIOClient(engineio.AsyncClient):  # type: ignore[misc]
    """python-engineio's client, able to stop reading while the consumer is behind."""

    resume: asyncio.Future[None] | None = None  # set while reading is paused
    target: ConnectTarget | None = None  # where it connects: the wire trace redacts its path

    async def _receive_packet(self, pkt: Any) -> None:
        # The read loops (polling and websocket) await this for one packet at a time: waiting
        # here stops them reading, and leaves the rest to TCP flow control.
        while self.resume is not None:
            await self.resume
        if WIRE.isEnabledFor(DEBUG):
            _trace("in", pkt, self.target)
        await super()._receive_packet(pkt)

    async def _send_packet(self, pkt: Any) -> None:
        if WIRE.isEnabledFor(DEBUG) and self.state == "connected":
            _trace("out", pkt, self.target)
        await super()._send_packet(pkt)


def _trace(direction: Direction, pkt: Any, target: ConnectTarget | None) -> None:
    # Never pkt.encode() for a binary packet: it caches the raw form, and long-polling then
    # sends that instead of base64.
    trace_packet(direction, len(pkt.data) if pkt.binary else pkt.encode(), target)


class AsyncClient(socketio.AsyncClient):  # type: ignore[misc]
    """AsyncClient that lets the catch-all handler know whether the server wants an ack."""

    def _engineio_client_class(self) -> type[EngineIOClient]:
        return EngineIOClient

    #: Namespaces whose CONNECT answer had a ``pid``: the server has connection state recovery
    #: on and appends an offset to their events (not to acknowledged ones). This client cannot
    #: recover, and takes the offset off, as the websocket transport does.
    offset_namespaces: frozenset[str] = frozenset()

    async def _handle_connect(self, namespace: str | None, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("pid"), str):
            self.offset_namespaces = self.offset_namespaces | {namespace or "/"}
        await super()._handle_connect(namespace, data)

    async def _handle_event(self, namespace: str | None, id: int | None, data: list[Any]) -> None:
        # Every message is handled in its own task, so the variable is private to this event.
        ack_wanted.set(id is not None)
        if (
            id is None
            and self.offset_namespaces
            and (namespace or "/") in self.offset_namespaces
            and len(data) > 1
            and type(data[-1]) is str
        ):
            data = data[:-1]
        await super()._handle_event(namespace, id, data)


@functools.cache
def msgpack_packet_class() -> Any:
    """python-socketio's msgpack packet as socket.io-msgpack-parser's peers expect it.

    It reads notepack.io's extension types as :func:`jamsocket_rt.protocol.msgpack.ext_hook`
    says (Node's ``undefined`` becomes None), and writes no ``data`` where a packet has none:
    python-socketio writes nil, which the Node parser refuses in a CONNECT or a DISCONNECT
    (and then closes the connection).
    """
    from socketio.msgpack_packet import MsgPackPacket

    class Packet(MsgPackPacket.configure(ext_hook=ext_hook)):  # type: ignore[misc]
        def _to_dict(self) -> dict[str, Any]:
            fields: dict[str, Any] = super()._to_dict()
            if fields["data"] is None:
                del fields["data"]
            return fields

    return Packet


async def disconnect(client: Any) -> None:
    """Disconnects politely but promptly, and waits until python-engineio's tasks are done.

    AsyncClient.disconnect() waits for the pending long-poll GET, which a python-engineio
    server holds until its next ping (up to pingInterval). Instead: send the Socket.IO
    DISCONNECT of every namespace, wait (briefly) until it is written, then let python-engineio
    abort, which closes its HTTP session and with it the pending GET.
    """
    eio = client.eio
    if eio.state == "connected":
        for nsp in list(client.namespaces) or ["/"]:
            packet = client.packet_class(socketio.packet.DISCONNECT, namespace=nsp)
            await eio.send(packet.encode())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(eio.queue.join(), CLOSE_TIMEOUT)
    await eio.disconnect(abort=True)
    tasks = [t for t in (eio.read_loop_task, eio.write_loop_task) if t is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
    # After a ping timeout python-engineio leaves its websocket open; its session is closed by
    # now, so closing the websocket only releases aiohttp's connection.
    if eio.ws is not None and not eio.ws.closed:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(eio.ws.close(), CLOSE_TIMEOUT)


def network_cause(exc: BaseException) -> BaseException | None:
    """The aiohttp or OS error python-engineio replaced with its terse ConnectionError, if any."""
    seen: set[int] = set()
    current = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (aiohttp.ClientError, OSError)) and not isinstance(
            current, (socketio.exceptions.ConnectionError, engineio.exceptions.ConnectionError)
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def is_gone(exc: BaseException) -> bool:
    """True when the exception chain shows an HTTP 410 from the server."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientResponseError) and current.status == 410:
            return True
        # python-engineio reports a polling handshake's status only in its message.
        if (
            isinstance(current, engineio.exceptions.ConnectionError)
            and current.args
            and "status code 410" in str(current.args[0])
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


# python-socketio serializes with the standard library's json: check arguments the same way.
_STDLIB_JSON = StdlibJsonCodec()


def plain_json(data: list[Any]) -> tuple[list[Any], int, int]:
    """``data`` checked and copied as python-socketio's JSON parser carries it.

    Returns:
        (the copy, in the types python-socketio knows, its encoded size, Engine.IO packets).

    Raises:
        TypeError: something in ``data`` cannot be serialized.
    """
    # As an ACK: its data may be any list (an event's and an acknowledgement's arguments).
    frames = encode_packet(Packet(PacketType.ACK, data, 0), _STDLIB_JSON)
    # It takes no memoryview, and the caller may mutate its arguments once handed over.
    packet = decode_packet(frames[0][1][1:].decode(), _STDLIB_JSON)
    plain = reconstruct(packet.data, [payload for _, payload in frames[1:]])
    return plain, sum(len(payload) for _, payload in frames), len(frames)


def plain_msgpack(codec: MsgpackCodec) -> Callable[[list[Any]], tuple[list[Any], int, int]]:
    """:func:`plain_json` for socket.io-msgpack-parser (one binary message per packet)."""

    def plain(data: list[Any]) -> tuple[list[Any], int, int]:
        encoded = codec.pack(data)
        copy: list[Any] = codec.unpack(encoded)
        return copy, len(encoded), 1

    return plain
