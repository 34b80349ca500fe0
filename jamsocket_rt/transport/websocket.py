"""The fast default transport: Engine.IO v4 / Socket.IO v5 over a websocket of its own.

All protocol rules live in :class:`~jamsocket_rt.protocol.socketio.ClientProtocol`; this module
moves frames. It speaks the websocket itself (RFC 6455: the HTTP/1.1 upgrade, framing, masking,
with aiohttp's compiled masking function) on a plain asyncio connection, and is that
connection's asyncio protocol: what arrives is parsed and delivered in the same callback
(``data_received``), with no reader task, no queue and no future per message. A connection is
one object, one asyncio transport and one liveness timer, re-armed once per ping window.
Compared with the same transport on aiohttp's ``ws_connect`` (measured with ``benchmarks/``,
1,000 connections to the Node server): opening a connection takes about half the CPU time (about
250 instead of 500 us) and a connection holds about half the memory; per message the two cost
about the same, aiohttp's compiled frame reader against no reader task here.

Writing: :meth:`WebSocketTransport.emit` must not await. Frames are masked and framed here and
handed to the asyncio transport directly. A write on a quiet connection goes out at once (no
added latency); writes that follow it in the same event-loop iteration, and every write while
the connection is busy (the previous iteration wrote more than one batch), are joined and
written once by a ``call_soon`` callback at the end of the iteration: pipelined sends cost one
syscall per iteration, not one per frame, and reach the server in one piece. Back-pressure uses
the asyncio transport's own flow control, with :meth:`drain`'s high and low water marks as its
limits.

Host names are resolved once per ten seconds and shared by every connection (a thousand
sessions to one host resolve it once); TLS contexts are built once per process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import os
import random
import socket
import ssl as _ssl
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

from .._errors import TokenExpired
from ..protocol.engineio import ProtocolError
from ..protocol.packets import Frame, JsonCodec
from ..protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
)
from ._common import CLOSED as _CLOSED
from ._common import CONNECTED as _CONNECTED
from ._common import CONNECTING as _CONNECTING
from ._common import TransportCore, host_of, once_responder, redact, socketio_path
from ._timers import coarse_timers
from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
    NamespaceListener,
    Transport,
    TransportListener,
)

_mask_in_place: Callable[[bytes, bytearray], None]
try:  # aiohttp >= 3.11 keeps its compiled (Cython) masking function here: 80x pure Python's
    from aiohttp._websocket.helpers import websocket_mask as _compiled_mask

    _mask_in_place = _compiled_mask
except ImportError:  # pragma: no cover

    def _mask_in_place(mask: bytes, data: bytearray) -> None:
        for i in range(len(data)):
            data[i] ^= mask[i & 3]


__all__ = ["WebSocketTransport"]

#: Default write-buffer water marks of :meth:`WebSocketTransport.drain`, in bytes.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024

#: How long close() waits for the server's websocket close frame before dropping the line.
CLOSE_TIMEOUT = 2.0

#: The longest HTTP response head accepted in answer to the upgrade request, in bytes.
MAX_RESPONSE_HEAD = 64 * 1024

#: How long a resolved host name is reused.
DNS_TTL = 10.0

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONTINUATION = 0x0
_OP_TEXT = 0x1
_OP_BINARY = 0x2
_OP_CLOSE = 0x8
_OP_PING = 0x9
_OP_PONG = 0xA
# Header and masking key in one pack: 7-bit, 16-bit and 64-bit payload lengths.
_PACK_HEAD1 = struct.Struct("!BBI").pack
_PACK_HEAD2 = struct.Struct("!BBHI").pack
_PACK_HEAD3 = struct.Struct("!BBQI").pack
_UNPACK_LEN2 = struct.Struct("!H").unpack_from
_UNPACK_LEN3 = struct.Struct("!Q").unpack_from
# RFC 6455 wants unpredictable masks against proxy cache poisoning, not secret ones; aiohttp
# uses the same generator. A syscall per frame (os.urandom) would cost more than the framing.
_random_mask = random.Random().getrandbits


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        head = _PACK_HEAD1(0x80 | opcode, 0x80 | length, _random_mask(32))
        mask = head[2:]
    elif length < 65536:
        head = _PACK_HEAD2(0x80 | opcode, 0xFE, length, _random_mask(32))
        mask = head[4:]
    else:
        head = _PACK_HEAD3(0x80 | opcode, 0xFF, length, _random_mask(32))
        mask = head[10:]
    masked = bytearray(payload)
    _mask_in_place(mask, masked)
    return head + masked


def _close_frame(code: int) -> bytes:
    return _frame(_OP_CLOSE, code.to_bytes(2, "big"))


# --------------------------------------------------------------------------- connecting

_contexts: dict[bool, _ssl.SSLContext] = {}


def _ssl_context(value: _ssl.SSLContext | bool | None) -> _ssl.SSLContext:
    """The TLS context for ``ConnectTarget.ssl`` (built once per process: loading the CA
    bundle takes milliseconds)."""
    if isinstance(value, _ssl.SSLContext):
        return value
    verify = value is None or value is True
    context = _contexts.get(verify)
    if context is None:
        context = _ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = _ssl.CERT_NONE
        _contexts[verify] = context
    return context


AddrInfo = tuple[int, int, int, Any]  # family, type, proto, sockaddr

_resolved: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
_resolving: dict[tuple[int, str, int], asyncio.Future[list[AddrInfo]]] = {}


async def _addresses(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[AddrInfo]:
    """The addresses of ``host``: literals at once, names from a cache shared by every
    connection (one lookup per host at a time, kept :data:`DNS_TTL` seconds)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if ip.version == 4:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port, 0, 0))]
    now = time.monotonic()
    cached = _resolved.get((host, port))
    if cached is not None and cached[0] > now:
        return cached[1]
    key = (id(loop), host, port)
    pending = _resolving.get(key)
    if pending is None:
        pending = _resolving[key] = loop.create_future()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found: list[AddrInfo] = [
                (family, kind, proto, address) for family, kind, proto, _, address in infos
            ]
            if not found:
                raise OSError(f"{host} has no address")
            _resolved[(host, port)] = (time.monotonic() + DNS_TTL, found)
            pending.set_result(found)
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: the waiters (if any) raise it themselves
            raise
        finally:
            del _resolving[key]
        return found
    return await asyncio.shield(pending)


async def _connect(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.Protocol,
    host: str,
    port: int,
    context: _ssl.SSLContext | None,
) -> None:
    """Connects ``protocol`` to the first address of ``host`` that answers (TLS when
    ``context`` is given, verified against ``host``)."""
    errors: list[OSError] = []
    for family, _, _, address in await _addresses(loop, host, port):
        try:
            # An IP address: the loop connects without a lookup (uvloop in C, end to end).
            await loop.create_connection(
                lambda: protocol,
                host=address[0],
                port=address[1],
                family=family,
                ssl=context,
                server_hostname=host if context is not None else None,
            )
        except OSError as exc:
            errors.append(exc)
            continue
        return
    if len(errors) == 1:
        raise errors[0]
    raise OSError("; ".join(str(error) for error in errors))


def _cancel_on_timeout(task: asyncio.Task[Any], expired: list[bool]) -> None:
    expired.append(True)
    task.cancel()


def _upgrade_request(target: ConnectTarget, key: str) -> bytes:
    url = URL(target.origin)
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.explicit_port:
        host = f"{host}:{url.port}"
    path = URL.build(path=socketio_path(target), query_string="EIO=4&transport=websocket")
    lines = [
        f"GET {path.raw_path_qs} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: jamsocket_rt",
    ]
    reserved = {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
    for name, value in target.headers.items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"header {name!r}: a name or value with a line break or colon")
        if name.lower() in reserved:
            continue
        if name.lower() in ("host", "user-agent"):
            lines = [line for line in lines if not line.lower().startswith(name.lower() + ":")]
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _check_upgrade_answer(head: bytes, key: str, where: str) -> None:
    """Raises unless ``head`` (the response head, without its blank line) accepts the upgrade.

    Raises:
        TokenExpired: 410 Gone.
        ConnectionError: another status (the message names ``where``, never the path).
        ProtocolError: a 101 that breaks RFC 6455.
    """
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith("HTTP/")
        or not status_line[1].isdigit()
    ):
        raise ProtocolError(f"{where} did not answer with HTTP: {lines[0][:40]!r}")
    status = int(status_line[1])
    reason = status_line[2] if len(status_line) > 2 else ""
    if status == 410:
        raise TokenExpired(
            f"{where} answered 410 Gone: the token is unknown or expired, or its backend has ended"
        )
    if status != 101:
        raise ConnectionError(f"{where} refused the websocket: HTTP {status} {reason}".rstrip())
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    digest = hashlib.sha1(key.encode() + _WS_GUID, usedforsecurity=False).digest()
    expected = base64.b64encode(digest).decode()
    if headers.get("upgrade", "").lower() != "websocket":
        raise ProtocolError(f"{where} answered 101 without 'Upgrade: websocket'")
    if "upgrade" not in {t.strip().lower() for t in headers.get("connection", "").split(",")}:
        raise ProtocolError(f"{where} answered 101 without 'Connection: upgrade'")
    if headers.get("sec-websocket-accept") != expected:
        raise ProtocolError(f"{where} answered 101 with a wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions"):
        raise ProtocolError(f"{where} chose a websocket extension that was not offered")


# --------------------------------------------------------------------------- the transport


class WebSocketTransport(TransportCore, asyncio.Protocol):
    """One Socket.IO connection over a websocket of its own (see the module docstring).

    Args:
        json: the JSON codec (default: orjson when installed, else the standard library).
        write_high_water: :meth:`drain` waits while more than this many bytes are unsent...
        write_low_water: ...until the buffer is down to this many.
    """

    __slots__ = (
        "_acks",
        "_busy",
        "_close_sent",
        "_closed",
        "_drain_waiter",
        "_early_loss",
        "_flush_handle",
        "_fragments",
        "_fragments_opcode",
        "_fragments_size",
        "_halted",
        "_handshake",
        "_high",
        "_json",
        "_key",
        "_low",
        "_max_payload",
        "_need",
        "_nsp",
        "_paused",
        "_pending",
        "_pending_size",
        "_proto",
        "_rest",
        "_resume_handle",
        "_timer",
        "_tx",
        "_upgraded",
        "_where",
        "_writing_paused",
    )

    def __init__(
        self,
        *,
        json: JsonCodec | None = None,
        write_high_water: int = WRITE_HIGH_WATER,
        write_low_water: int = WRITE_LOW_WATER,
    ) -> None:
        if not 0 <= write_low_water <= write_high_water:
            raise ValueError("need 0 <= write_low_water <= write_high_water")
        super().__init__()
        self._json = json
        self._high = write_high_water
        self._low = write_low_water
        self._proto: ClientProtocol | None = None
        self._nsp = "/"  # the connection's own namespace
        self._tx: asyncio.Transport | None = None
        self._acks: dict[int, AckCallback] = {}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._busy = False
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._max_payload = 0
        # Reading: bytes not parsed yet (an incomplete frame, or all that waits while reading
        # is paused) and how many are needed before parsing can go on.
        self._upgraded = False
        self._rest: bytearray | None = None
        self._need = 0
        self._fragments: list[bytes] | None = None  # a fragmented message being assembled
        self._fragments_size = 0
        self._fragments_opcode = 0
        self._paused = False  # pause_reading() was called
        self._halted = False  # nothing more is read: lost, closed or failed
        self._resume_handle: asyncio.Handle | None = None
        # Writing
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Lifecycle
        self._key = ""
        self._where = ""
        self._handshake: asyncio.Future[None] | None = None
        self._close_sent = False
        self._early_loss: BaseException | None = None
        self._closed: asyncio.Future[None] | None = None  # set once the line is gone

    # ----------------------------------------------------------------------- connect

    async def connect(self, target: ConnectTarget, listener: TransportListener) -> None:
        """Open the websocket and complete the Socket.IO CONNECT.

        Raises:
            TokenExpired: the proxy answered 410 Gone.
            ConnectRefused: the server answered the CONNECT with CONNECT_ERROR.
            ConnectionError: the connection or the handshake failed (names the host only).
            TimeoutError: ``target.connect_timeout`` elapsed.
        """
        loop = self._begin_connect(listener)
        self._hold_events()
        host = self._where = host_of(target)
        self._nsp = target.namespace
        self._max_payload = target.max_payload
        # asyncio's own loops tell time with time.monotonic(): the same clock, called directly
        # (the protocol reads it for every message).
        clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._proto = ClientProtocol(
            auth=target.auth,
            json=self._json,
            max_payload=target.max_payload,
            clock=clock,
            namespace=target.namespace,
        )
        self._handshake = loop.create_future()
        self._closed = loop.create_future()
        # The connect timeout on a coarse timer: asyncio.timeout() costs a loop timer (and a
        # heap entry among a thousand others when a thousand sessions connect at once).
        task = asyncio.current_task()
        assert task is not None
        expired: list[bool] = []
        timer = coarse_timers(loop).call_later(
            target.connect_timeout, _cancel_on_timeout, task, expired
        )
        try:
            try:
                await self._open(target, loop)
            finally:
                timer.cancel()
            if self._phase is not _CONNECTING:
                raise ConnectionError(f"the connection to {host} was closed while connecting")
        except BaseException as exc:
            self._release()
            if self._phase is _CONNECTING:
                self._phase = _CLOSED
            if expired and isinstance(exc, asyncio.CancelledError):
                if sys.version_info >= (3, 11):
                    task.uncancel()
                raise TimeoutError(
                    f"connecting to {host} took longer than {target.connect_timeout} s"
                ) from None
            if isinstance(exc, ProtocolError):
                detail = redact(f"{type(exc).__name__}: {exc}", target)
                raise ConnectionError(f"cannot connect to {host}: {detail}") from None
            # The rest is ours, with messages that name the host only: ConnectRefused,
            # TokenExpired, ConnectionError (see _open), or cancellation.
            raise
        self._phase = _CONNECTED
        loop.call_soon(self._release_events)
        if self._early_loss is not None:  # lost right after the server accepted
            loop.call_soon(self._report_early_loss)
        else:
            self._arm_liveness()

    async def _open(self, target: ConnectTarget, loop: asyncio.AbstractEventLoop) -> None:
        url = URL(target.origin)
        secure = url.scheme in ("https", "wss")
        host = url.host or ""
        port = url.port or (443 if secure else 80)
        self._key = base64.b64encode(os.urandom(16)).decode()
        request = _upgrade_request(target, self._key)
        try:
            await _connect(loop, self, host, port, _ssl_context(target.ssl) if secure else None)
        except OSError as exc:  # refused, unreachable, unknown host, TLS failures
            detail = redact(f"{type(exc).__name__}: {exc}", target)
            raise ConnectionError(f"cannot connect to {self._where}: {detail}") from None
        assert self._tx is not None
        self._tx.write(request)
        assert self._handshake is not None
        await self._handshake

    def _fail_handshake(self, error: BaseException) -> None:
        handshake = self._handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(error)

    # ----------------------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without deriving from it)
        tx = self._tx = cast(asyncio.Transport, transport)
        tx.set_write_buffer_limits(high=self._high, low=self._low)

    def connection_lost(self, exc: Exception | None) -> None:
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._wake_drainers(ConnectionError("the connection was lost"))
        self._failed(
            ConnectionResetError(
                "the connection was closed"
                if exc is None
                else f"the connection failed: {type(exc).__name__}: {exc}"
            ),
            ConnectionError(f"{self._where} closed the connection during the handshake"),
        )

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drainers(None)

    def _wake_drainers(self, error: BaseException | None) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            self._receive(data)
            return
        # The answer to the upgrade request: a response head, perhaps frames after it.
        rest = self._rest
        if rest is None:
            rest = self._rest = bytearray()
        rest += data
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            if len(rest) > MAX_RESPONSE_HEAD:
                self._handshake_error(ProtocolError(f"{self._where} sent an endless HTTP head"))
            return
        head, tail = bytes(rest[:end]), bytes(rest[end + 4 :])
        self._rest = None
        try:
            _check_upgrade_answer(head, self._key, self._where)
        except Exception as exc:  # noqa: BLE001 (handed to connect())
            self._handshake_error(exc)
            return
        self._upgraded = True
        if tail:
            self._receive(tail)

    def _handshake_error(self, error: BaseException) -> None:
        self._halted = True
        self._fail_handshake(error)
        if self._tx is not None:
            self._tx.abort()

    # ----------------------------------------------------------------------- reading frames

    def _receive(self, data: bytes) -> None:
        """Parses and delivers the frames in ``data``, after what was kept of earlier data."""
        try:
            offset = 0
            rest = self._rest
            while rest is not None:
                # An incomplete frame (or data held back by a pause) waits in ``rest``.
                missing = self._need - len(rest)
                if self._paused or missing > len(data) - offset:
                    rest += memoryview(data)[offset:]
                    return
                if missing > 0:
                    rest += memoryview(data)[offset : offset + missing]
                    offset += missing
                self._rest = None
                self._parse(bytes(rest), 0)
                rest = self._rest  # kept again: only a header was complete, or paused
            if offset < len(data):
                self._parse(data, offset)
        except ProtocolError as exc:
            self._protocol_failed(exc)

    def _parse(self, data: bytes, pos: int) -> None:
        end = len(data)
        proto = self._proto
        assert proto is not None
        limit = self._max_payload
        while pos < end:
            if self._paused or self._halted:
                if not self._halted:
                    self._keep(data, pos, 0)
                return
            if end - pos < 2:
                self._keep(data, pos, 2)
                return
            first = data[pos]
            length = data[pos + 1]
            if length & 0x80:
                raise ProtocolError("the server sent a masked frame")
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    self._keep(data, pos, 4)
                    return
                (length,) = _UNPACK_LEN2(data, start)
                start += 2
            elif length == 127:
                if end - pos < 10:
                    self._keep(data, pos, 10)
                    return
                (length,) = _UNPACK_LEN3(data, start)
                start += 8
            if length > limit:
                raise ProtocolError(
                    f"a message exceeded max_payload: {length} bytes, more than {limit}"
                )
            stop = start + length
            if stop > end:
                self._keep(data, pos, stop - pos)
                return
            payload = data[start:stop]
            pos = stop
            if first == 0x81 and self._fragments is None:  # a whole text message: the usual
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    raise ProtocolError("a text message that is not UTF-8") from None
                events: list[Any] | None = proto.receive_text(text)
            else:
                events = self._frame_received(first, payload)
                if events is None:
                    continue
            if proto._outgoing:  # a PONG or the CONNECT (rare: no call for nothing)
                self._write(proto.data_to_send())
            if events:
                event = events[0]
                if type(event) is Ack and len(events) == 1:  # the usual: an acknowledgement
                    callback = self._acks.pop(event.id, None)
                    if callback is not None:
                        try:
                            callback(event.args)
                        except Exception as exc:  # noqa: BLE001 (reported to the loop's handler)
                            self._report_error(exc, "an acknowledgement callback")
                else:
                    self._dispatch(events)

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        """Keeps ``data[pos:]`` until ``need`` bytes (counted from ``pos``) are there."""
        self._rest = bytearray(memoryview(data)[pos:])
        self._need = need

    def _frame_received(self, first: int, payload: bytes) -> list[Any] | None:
        """The rarer frames: binary, fragments, control frames. Returns the protocol events,
        or None when there are none to act on."""
        proto = self._proto
        assert proto is not None
        if first & 0x70:
            raise ProtocolError("a websocket frame with reserved bits set (no extension)")
        fin = first & 0x80
        opcode = first & 0x0F
        if opcode >= 0x8:  # control frames: never fragmented, at most 125 bytes
            if not fin or len(payload) > 125:
                raise ProtocolError("a fragmented or oversized websocket control frame")
            if opcode == _OP_PING:
                self._write([(_OP_PONG, payload)])
            elif opcode == _OP_CLOSE:
                self._on_close_frame(payload)
            elif opcode != _OP_PONG:
                raise ProtocolError(f"unknown websocket opcode {opcode}")
            return None
        if opcode == _OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                raise ProtocolError("a continuation frame without a message to continue")
            fragments.append(payload)
            self._fragments_size += len(payload)
            if self._fragments_size > self._max_payload:
                raise ProtocolError(
                    f"a message exceeded max_payload: more than {self._max_payload} bytes"
                )
            if not fin:
                return None
            self._fragments = None
            opcode = self._fragments_opcode
            payload = b"".join(fragments)
        elif opcode in (_OP_TEXT, _OP_BINARY):
            if self._fragments is not None:
                raise ProtocolError("a new message before the last one was complete")
            if not fin:
                self._fragments = [payload]
                self._fragments_size = len(payload)
                self._fragments_opcode = opcode
                return None
        else:
            raise ProtocolError(f"unknown websocket opcode {opcode}")
        if opcode == _OP_TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise ProtocolError("a text message that is not UTF-8") from None
            return proto.receive_text(text)
        return proto.receive_bytes(payload)

    def _on_close_frame(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        if self._phase is _CLOSED:
            return  # the answer to our close frame: the server ends the connection next
        if not self._close_sent:
            self._close_sent = True
            self._write_now([(_OP_CLOSE, payload[:2])])
        why = "" if code is None else f" (websocket close code {code})"
        self._failed(
            ConnectionResetError(f"the connection was closed{why}"),
            ConnectionError(f"{self._where} closed the websocket during the handshake{why}"),
        )

    def _dispatch(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is Ack:
                callback = self._acks.pop(event.id, None)
                if callback is not None:
                    try:
                        callback(event.args)
                    except Exception as exc:  # noqa: BLE001 (reported to the loop's handler)
                        self._report_error(exc, "an acknowledgement callback")
            elif kind is Event:
                ack_id = event.ack_id
                if event.nsp is self._nsp or event.nsp == self._nsp:
                    self._deliver_event(
                        event.name, event.args, None if ack_id is None else self._responder(ack_id)
                    )
                else:
                    responder = None if ack_id is None else self._responder(ack_id, event.nsp)
                    self._namespace_event(event.nsp, event.name, event.args, responder)
            elif kind is Connected and event.nsp != self._nsp:
                self._namespace_connected(event.nsp, event.sid)
            elif kind is ConnectError and event.nsp != self._nsp:
                message = f"{self._where} refused namespace {event.nsp}: {event.message}"
                self._namespace_refused(event.nsp, ConnectRefused(message, event.data))
            elif kind is Disconnected and event.nsp is not None:
                self._namespace_ended(event.nsp, event.reason)
            elif kind is Connected:
                self._sid = event.sid
                handshake = self._handshake
                if handshake is not None and not handshake.done():
                    handshake.set_result(None)
            elif kind is ConnectError:
                self._handshake_error(
                    ConnectRefused(
                        f"{self._where} refused the Socket.IO connection: {event.message}",
                        event.data,
                    )
                )
                return
            elif kind is Disconnected:
                self._failed(
                    ConnectionAbortedError(f"the server ended the connection ({event.reason})"),
                    ConnectionError(f"{self._where} disconnected during the Socket.IO handshake"),
                )
                return

    def _protocol_failed(self, error: ProtocolError) -> None:
        # The socket may still be open: it is dropped rather than closed politely.
        self._failed(error)

    def _failed(self, error: BaseException, while_connecting: BaseException | None = None) -> None:
        """The connection is gone or unusable. Before the server accepted the Socket.IO CONNECT,
        connect() raises ``while_connecting`` (default: ``error``); afterwards the loss is
        reported, once connect() has returned if it has not yet (after the events that came
        before the loss)."""
        if self._phase is not _CONNECTING:
            # (a loss right after the accept, if any, says best what happened)
            if self._lose(self._early_loss or error):
                self._release()
            return
        handshake = self._handshake
        accepted = (
            handshake is not None
            and handshake.done()
            and not handshake.cancelled()
            and handshake.exception() is None
        )
        if not accepted:
            self._handshake_error(while_connecting or error)
            return
        # Accepted, and connect() is about to return: report the loss after it.
        if self._early_loss is None:
            self._early_loss = error
        self._halted = True
        if self._tx is not None:
            self._tx.abort()

    def _report_early_loss(self) -> None:
        error = self._early_loss
        if error is not None and self._lose(error):
            self._release()

    def _responder(self, ack_id: int, nsp: str | None = None) -> AckResponder:
        def send(args: Sequence[Any]) -> None:
            if self._phase is _CONNECTED:
                assert self._proto is not None
                self._write(self._proto.send_ack(ack_id, args, nsp))

        return once_responder(send)

    # ----------------------------------------------------------------------- namespaces

    @property
    def dropped_packets(self) -> int:
        """Packets received for namespaces nobody opened on this connection."""
        return self._proto.dropped if self._proto is not None else 0

    async def open_namespace(
        self, nsp: str, auth: Mapping[str, Any] | None, listener: NamespaceListener
    ) -> str:
        """See :meth:`Transport.open_namespace`."""
        future = self._join(nsp, listener)
        assert self._proto is not None
        try:
            self._proto.connect_namespace(nsp, auth)
        except (ValueError, RuntimeError):
            self._leave(nsp)
            raise
        self._write(self._proto.data_to_send())
        return await future

    def close_namespace(self, nsp: str) -> None:
        """See :meth:`Transport.close_namespace`."""
        self._leave(nsp)
        if self._proto is not None:
            frames = self._proto.disconnect_namespace(nsp)
            if frames and self._phase is _CONNECTED:
                self._write(frames)

    # ----------------------------------------------------------------------- sending

    def emit(
        self,
        event: str,
        args: Sequence[Any],
        on_ack: AckCallback | None = None,
        nsp: str | None = None,
    ) -> None:
        """Encode one event and queue it for writing; never blocks and never awaits.

        Raises:
            TypeError: an argument cannot be serialized (nothing was written).
            ValueError: the encoded event exceeds the server's maxPayload (nothing was written).
            ConnectionError: the transport is not connected.
        """
        if self._phase is not _CONNECTED:
            self._check_can_send()
        assert self._proto is not None
        try:
            frames, ack_id = self._proto.send_event(event, args, on_ack is not None, nsp)
        except RuntimeError as exc:  # a namespace that is not (or no longer) connected
            raise ConnectionError(str(exc)) from None
        if on_ack is not None and ack_id is not None:
            self._acks[ack_id] = on_ack
        self._write(frames)

    def _write(self, frames: list[Frame]) -> None:
        if self._flush_handle is not None or self._busy:
            # Join the batch that _flush writes at the end of this loop iteration: pipelined
            # sends cost one syscall per iteration, not one per frame.
            pending = self._pending
            for opcode, payload in frames:
                frame = _frame(opcode, payload)
                pending.append(frame)
                self._pending_size += len(frame)
            if self._flush_handle is None:
                assert self._loop is not None
                self._flush_handle = self._loop.call_soon(self._flush)
            return
        # The first write after a quiet iteration goes out at once: a lone send pays no
        # extra latency.
        tx, loop = self._tx, self._loop
        assert tx is not None
        assert loop is not None
        if not tx.is_closing():  # else connection_lost reports the loss
            if len(frames) == 1:
                tx.write(_frame(*frames[0]))
            else:
                tx.write(b"".join([_frame(opcode, payload) for opcode, payload in frames]))
        self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending = self._pending
        # Busy: more was written in this iteration than its first frame. The next iteration's
        # writes then all wait for its end too, so that a stream of pipelined sends goes out
        # in one write per iteration instead of a lone frame followed by the rest.
        self._busy = bool(pending)
        if pending:
            self._pending = []
            self._pending_size = 0
            tx = self._tx
            if tx is not None and not tx.is_closing():
                tx.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _flush_now(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()

    def _write_now(self, frames: list[Frame]) -> None:
        if frames:
            self._write(frames)
            self._flush_now()

    async def drain(self) -> None:
        """Wait while the outgoing buffer is above its high-water mark (back-pressure).

        Returns once it is down to the low-water mark.

        Raises:
            ConnectionError: the transport is not connected (or got lost while waiting).
        """
        self._check_can_send()
        if self._pending_size > self._high:
            # A burst within one loop iteration: hand it to the transport now, so that its
            # flow control sees it (smaller batches go at the iteration's end, as always).
            self._flush_now()
        if self._writing_paused:
            waiter = self._drain_waiter
            if waiter is None:
                assert self._loop is not None
                waiter = self._drain_waiter = self._loop.create_future()
            await asyncio.shield(waiter)
            self._check_can_send()

    # ----------------------------------------------------------------------- liveness

    def _arm_liveness(self) -> None:
        assert self._proto is not None
        assert self._loop is not None
        deadline = self._proto.deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._check_liveness)

    def _check_liveness(self) -> None:
        self._timer = None
        proto, loop = self._proto, self._loop
        assert proto is not None
        assert loop is not None
        if self._phase is not _CONNECTED:
            return
        if not proto.expired(loop.time()):
            self._arm_liveness()
            return
        info = proto.open_info
        window = 0.0 if info is None else info.ping_interval + info.ping_timeout
        if self._lose(TimeoutError(f"no ping from the server for {window:g} s")):
            # Black-holed: no close handshake can complete.
            self._release()

    # ----------------------------------------------------------------------- flow control

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading` (see the Transport contract)."""
        if not self._paused and self._phase is _CONNECTED:
            self._paused = True
            if self._tx is not None:
                self._tx.pause_reading()
            # The server's pings now wait unread: silence is ours, not the server's.
            self._stop_timers()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`; idempotent."""
        if not self._paused:
            return
        self._paused = False
        if self._phase is not _CONNECTED:
            return
        assert self._proto is not None
        assert self._loop is not None
        if self._tx is not None and not self._tx.is_closing():
            self._tx.resume_reading()
        self._proto.last_seen = self._loop.time()
        self._arm_liveness()
        if self._rest is not None and self._resume_handle is None:
            # What arrived before the pause goes first (before anything read from now on).
            self._resume_handle = self._loop.call_soon(self._read_kept)

    def _read_kept(self) -> None:
        self._resume_handle = None
        if not self._paused and self._rest is not None:
            self._receive(b"")

    # ----------------------------------------------------------------------- closing

    def _on_lost(self) -> None:
        self._halted = True
        self._stop_timers()
        self._acks.clear()

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        """Disconnect politely and release everything; idempotent. Pending acks never fire."""
        phase = self._phase
        if phase is _CLOSED:
            return
        self._phase = _CLOSED
        self._halted = True
        self._stop_timers()
        self._acks.clear()
        self._drop_namespaces()
        if phase is _CONNECTING:
            # connect() is waiting: it sees the phase, cleans up and raises.
            self._fail_handshake(
                ConnectionError(f"the connection to {self._where} was closed while connecting")
            )
            return
        tx = self._tx
        if phase is _CONNECTED and tx is not None and not tx.is_closing():
            assert self._proto is not None
            frames = self._proto.send_disconnect()
            if not self._close_sent:
                self._close_sent = True
                frames.append((_OP_CLOSE, (1000).to_bytes(2, "big")))
            self._write_now(frames)
            closed = self._closed
            if closed is not None and not closed.done():
                # The server answers the close frame and ends the connection (RFC 6455: the
                # server closes the TCP connection first).
                await asyncio.wait([closed], timeout=CLOSE_TIMEOUT)
        self._release()

    def _release(self) -> None:
        """Lets go of the connection and everything queued; idempotent."""
        self._halted = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        self._pending.clear()
        self._pending_size = 0
        self._rest = None
        self._fragments = None
        if self._tx is not None:
            self._tx.abort()  # a no-op once the server has ended the connection


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: WebSocketTransport) -> Transport:
        return transport
