"""Opening websocket connections, and the websocket half of the transport that runs on them.

A :class:`Connector` owns what connections to the same hosts share: resolved host names (kept
:data:`DNS_TTL` seconds, one lookup per name at a time: a thousand sessions to one host resolve
it once) and TLS contexts (loading the CA bundle takes milliseconds). Transports use
:func:`default_connector` unless given their own (which isolates its caches).

:class:`WebSocketConnection` is one connection's bytes as its asyncio protocol; what the
messages mean is its subclass's business (:class:`~.websocket.WebSocketTransport`: Socket.IO).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl as _ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

from ..protocol.engineio import ProtocolError
from ..protocol.packets import Frame
from ..protocol.websocket import (
    OP_CLOSE,
    ClientHandshake,
    FrameParser,
    Message,
    close_payload,
    host_header,
)
from ..protocol.websocket import encode_frame as _frame
from ._common import TransportCore, redact, socketio_path
from ._timers import Deadline, coarse_timers
from .base import ConnectTarget

__all__ = [
    "CLOSE_TIMEOUT",
    "DNS_TTL",
    "AddrInfo",
    "Connector",
    "WebSocketConnection",
    "default_connector",
]

#: How long a resolved host name is reused, in seconds.
DNS_TTL = 10.0

#: How long the server gets to end the TCP connection once a close frame was sent.
CLOSE_TIMEOUT = 2.0

#: One address to connect to: (family, type, proto, sockaddr), as from getaddrinfo().
AddrInfo = tuple[int, int, int, Any]

# Expired names are swept once the cache holds this many (it never grows without end).
_SWEEP_AT = 256


class _Lookup:
    """One getaddrinfo() in flight and how many callers wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[list[AddrInfo]]) -> None:
        self.task = task
        self.waiters = 0


class Connector:
    """Opens connections to hosts, sharing name lookups and TLS contexts between them.

    Args:
        dns_ttl: seconds a resolved name is reused (0: resolve for every connection).
        clock: the monotonic clock that ages the names.

    Attributes:
        dns: the DNS cache: (host, port) -> (expiry on ``clock``, addresses).
    """

    __slots__ = ("_clock", "_contexts", "_lookups", "dns", "dns_ttl")

    def __init__(
        self, *, dns_ttl: float = DNS_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.dns_ttl = dns_ttl
        self._clock = clock
        self.dns: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._contexts: dict[bool, _ssl.SSLContext] = {}
        # Lookups in flight, per event loop (their tasks belong to one).
        self._lookups: dict[tuple[asyncio.AbstractEventLoop, str, int], _Lookup] = {}

    def ssl_context(self, value: _ssl.SSLContext | bool | None) -> _ssl.SSLContext:
        """The TLS context for ``ConnectTarget.ssl``.

        Args:
            value: an SSLContext (returned as it is); None or True to verify certificates and
                host names; False to verify neither.

        Returns:
            The context, built once per connector for each of verify / do not verify.
        """
        if isinstance(value, _ssl.SSLContext):
            return value
        verify = value is None or value is True
        context = self._contexts.get(verify)
        if context is None:
            context = _ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = _ssl.CERT_NONE
            self._contexts[verify] = context
        return context

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """The addresses of ``host`` (TCP), in the resolver's order of preference.

        IP literals are returned at once; names come from the cache or from one lookup shared
        by every caller that asks while it runs. A caller that is cancelled stops waiting
        without disturbing the others; the lookup is cancelled only when nobody waits for it.

        Raises:
            OSError: the name cannot be resolved (socket.gaierror) or has no address.
        """
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if ip.version == 4:
                return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
            return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port, 0, 0))]
        cached = self.dns.get((host, port))
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        loop = asyncio.get_running_loop()
        key = (loop, host, port)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = _Lookup(loop.create_task(self._lookup(host, port)))
            lookup.task.add_done_callback(lambda task: self._forget(key, task))
        lookup.waiters += 1
        try:
            # Shielded: cancelling this caller must not cancel the lookup the others await.
            return await asyncio.shield(lookup.task)
        except asyncio.CancelledError:
            if lookup.waiters == 1 and not lookup.task.done():
                # The last one waiting: nobody needs the answer any more. A caller that comes
                # now starts a lookup of its own rather than join a cancelled one.
                self._forget(key, lookup.task)
                lookup.task.cancel()
            raise
        finally:
            lookup.waiters -= 1

    async def _lookup(self, host: str, port: int) -> list[AddrInfo]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[AddrInfo] = [
            (family, kind, proto, address) for family, kind, proto, _, address in infos
        ]
        if not found:
            raise OSError(f"{host} has no address")
        now = self._clock()
        if len(self.dns) >= _SWEEP_AT:  # (in place: the dict is shared by reference)
            for name in [name for name, entry in self.dns.items() if entry[0] <= now]:
                del self.dns[name]
        self.dns[(host, port)] = (now + self.dns_ttl, found)
        return found

    def _forget(
        self, key: tuple[asyncio.AbstractEventLoop, str, int], task: asyncio.Task[Any]
    ) -> None:
        lookup = self._lookups.get(key)
        if lookup is not None and lookup.task is task:
            del self._lookups[key]
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the waiters (if any) raise it themselves

    async def connect(
        self,
        protocol: asyncio.Protocol,
        host: str,
        port: int,
        *,
        ssl: _ssl.SSLContext | None = None,
    ) -> asyncio.Transport:
        """Connects ``protocol`` to the first address of ``host`` that accepts.

        Args:
            protocol: the connection's asyncio protocol.
            host: a host name or IP literal (certificates are checked against it).
            port: the TCP port.
            ssl: the TLS context, or None for plain TCP.

        Returns:
            The asyncio transport (also given to ``protocol.connection_made``).

        Raises:
            OSError: the name cannot be resolved, or no address accepted (the message says what
                each one answered); TLS failures are OSErrors too (ssl.SSLError).
        """
        loop = asyncio.get_running_loop()
        errors: list[OSError] = []
        for family, _, _, address in await self.resolve(host, port):
            try:
                # An IP address: the loop connects without a lookup (uvloop in C, end to end).
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    host=address[0],
                    port=address[1],
                    family=family,
                    ssl=ssl,
                    server_hostname=host if ssl is not None else None,
                )
            except OSError as exc:
                errors.append(exc)
                continue
            return transport
        if len(errors) == 1:
            raise errors[0]
        raise OSError("; ".join(str(error) for error in errors))

    def clear(self) -> None:
        """Forgets the resolved names and the TLS contexts built so far."""
        self.dns.clear()
        self._contexts.clear()


# --------------------------------------------------------------------------- the connection


class WebSocketConnection(TransportCore, asyncio.Protocol):
    """The websocket half of a transport: one connection's bytes, as its asyncio protocol.

    Reading: what arrives is parsed in the callback that got it (``data_received``) and the
    complete messages go to :meth:`_read` (to ``_backlog`` while reading is paused): no reader
    task, no queue, no future per message.

    Writing: :meth:`_write` never awaits. A write on a quiet connection goes out at once; writes
    that follow in the same loop iteration, and all writes while the connection is busy, are
    joined and written once at the iteration's end (one syscall, not one per frame).
    Back-pressure is the asyncio transport's flow control between the water marks.

    Closing (RFC 6455 section 7): one close frame is sent (:meth:`_start_close`), then the
    server, which ends TCP first, gets :data:`CLOSE_TIMEOUT` seconds before the line is dropped.

    Subclasses provide :meth:`_read`, :meth:`_protocol_failed` and :meth:`_handshake_error`,
    and set ``_closed`` (done once the connection is gone) before opening.

    Args:
        write_high_water: the write buffer size above which writing counts as paused...
        write_low_water: ...until it is down to this many bytes.
        connector: opens the connection (default: :func:`default_connector`).

    Raises:
        ValueError: the water marks are not ``0 <= write_low_water <= write_high_water``.
    """

    __slots__ = (
        "_backlog",
        "_busy",
        "_close_sent",
        "_closed",
        "_connector",
        "_drain_waiter",
        "_flush_handle",
        "_halted",
        "_high",
        "_linger",
        "_low",
        "_paused",
        "_pending",
        "_pending_size",
        "_reader",
        "_resume_handle",
        "_tx",
        "_upgrade",
        "_upgraded",
        "_where",
        "_writing_paused",
    )

    def __init__(
        self, *, write_high_water: int, write_low_water: int, connector: Connector | None
    ) -> None:
        if not 0 <= write_low_water <= write_high_water:
            raise ValueError("need 0 <= write_low_water <= write_high_water")
        super().__init__()
        self._high = write_high_water
        self._low = write_low_water
        self._connector = connector or default_connector()
        self._tx: asyncio.Transport | None = None
        self._where = ""  # host[:port]: what error messages may name
        # Reading: the upgrade's answer, then websocket frames.
        self._upgrade: ClientHandshake | None = None
        self._upgraded = False
        self._reader: FrameParser | None = None
        self._backlog: list[Message] | None = None  # read, not delivered: reading was paused
        self._paused = False  # pause_reading() was called
        self._halted = False  # nothing more is read: lost, closed or failed
        self._resume_handle: asyncio.Handle | None = None
        # Writing
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._busy = False
        self._flush_handle: asyncio.Handle | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Closing
        self._close_sent = False
        self._linger: Deadline | None = None  # drops the line if the server does not end it
        self._closed: asyncio.Future[None] | None = None  # set once the line is gone

    if TYPE_CHECKING:  # the subclass's: acting on messages, failing the connection

        def _read(self, messages: list[Message]) -> None: ...
        def _protocol_failed(self, error: ProtocolError) -> None: ...
        def _handshake_error(self, error: BaseException) -> None: ...

    # ----------------------------------------------------------------------- opening

    async def _open_line(self, target: ConnectTarget) -> None:
        """Connects to ``target`` and sends the upgrade request (the answer comes to
        ``data_received``).

        Raises:
            ConnectionError: the connection could not be opened (the message names the host
                only, never the token-bearing path).
            ValueError: a header of ``target`` would inject others.
        """
        url = URL(target.origin)
        secure = url.scheme in ("https", "wss")
        host = url.host or ""
        port = url.port or (443 if secure else 80)
        resource = URL.build(path=socketio_path(target), query_string="EIO=4&transport=websocket")
        upgrade = self._upgrade = ClientHandshake(
            host=host_header(url.raw_host or "", url.explicit_port),
            resource=resource.raw_path_qs,
            where=self._where,
            headers=target.headers,
        )
        connector = self._connector
        try:
            await connector.connect(
                self, host, port, ssl=connector.ssl_context(target.ssl) if secure else None
            )
        except OSError as exc:  # refused, unreachable, unknown host, TLS failures
            detail = redact(f"{type(exc).__name__}: {exc}", target)
            raise ConnectionError(f"cannot connect to {self._where}: {detail}") from None
        assert self._tx is not None
        self._tx.write(upgrade.request)

    # ----------------------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without deriving from it)
        tx = self._tx = cast(asyncio.Transport, transport)
        tx.set_write_buffer_limits(high=self._high, low=self._low)

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
            reader = self._reader
            if reader is None or self._halted:
                return
            try:
                messages = reader.receive(data)
            except ProtocolError as exc:
                self._protocol_failed(exc)
                return
            if self._paused:  # (what was on its way when reading paused waits too)
                self._backlog = [*(self._backlog or ()), *messages]
            elif messages:
                self._read(messages)
            return
        upgrade = self._upgrade
        if upgrade is None or self._halted:
            return
        try:  # the answer to the upgrade request: a response head, perhaps frames after it
            tail = upgrade.receive_data(data)
        except Exception as exc:  # noqa: BLE001 (handed to connect())
            self._handshake_error(exc)
            return
        if tail is not None:
            self._upgrade = None
            self._upgraded = True
            if tail:
                self.data_received(tail)

    def _read_kept(self) -> None:
        self._resume_handle = None
        backlog = self._backlog
        if backlog is not None and not (self._paused or self._halted):
            self._backlog = None
            self._read(backlog)

    # ----------------------------------------------------------------------- writing

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

    # ----------------------------------------------------------------------- closing

    def _start_close(self, code: int | None, *, wait: bool = True) -> None:
        """Sends the close frame (once, and only on an open websocket) and stops reading.

        Args:
            code: the close code (None: a close frame without one).
            wait: give the server :data:`CLOSE_TIMEOUT` seconds to end the TCP connection, as
                RFC 6455 section 7.1.1 asks of clients; else end it at once after the frame,
                for a server that already ended the session (python-engineio, for one, then
                waits for the client to go).
        """
        self._halted = True
        tx, loop = self._tx, self._loop
        if self._close_sent or not self._upgraded or tx is None or tx.is_closing():
            return
        assert loop is not None
        self._close_sent = True
        self._write_now([(OP_CLOSE, close_payload(code))])
        self._linger = coarse_timers(loop).call_later(CLOSE_TIMEOUT, self._abort)
        if not wait:
            tx.close()  # after what is buffered; the linger timer bounds that too

    def _stop_linger(self) -> None:
        linger, self._linger = self._linger, None
        if linger is not None:
            linger.cancel()

    def _abort(self) -> None:
        self._linger = None
        if self._tx is not None:
            self._tx.abort()

    def _drop(self) -> None:
        """Drops the connection now, unless a close frame was sent: then the server ends it,
        or the linger timer drops it."""
        if self._linger is None:
            self._abort()

    async def _await_server_close(self) -> None:
        """Waits (at most :data:`CLOSE_TIMEOUT` seconds) for the server to end the connection."""
        closed = self._closed
        if closed is not None and not closed.done():
            await asyncio.wait([closed], timeout=CLOSE_TIMEOUT)

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
        self._reader = self._backlog = None
        self._drop()  # a no-op once the server has ended the connection


_default = Connector()


def default_connector() -> Connector:
    """The process-wide connector that transports use unless given one of their own."""
    return _default
