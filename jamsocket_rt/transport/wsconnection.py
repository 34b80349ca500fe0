"""The websocket half of a transport: one connection's bytes, as its asyncio protocol.

:class:`WebSocketConnection` performs the upgrade (:class:`~..protocol.handshake.ClientHandshake`),
reads frames (:class:`~..protocol.websocket.FrameParser`), writes in batches with back-pressure,
and closes as RFC 6455 7.1.1 says. What the messages mean is its subclass's business
(:class:`~.websocket.WebSocketTransport`: Socket.IO).
"""

from __future__ import annotations

import asyncio
import errno
import threading
from typing import TYPE_CHECKING, cast

from yarl import URL

from ..protocol.engineio import ProtocolError
from ..protocol.packets import Frame
from ..protocol.proxy import proxy_for
from ..protocol.websocket import (
    OP_CLOSE,
    ClientHandshake,
    FrameParser,
    Message,
    close_payload,
    host_header,
)
from ..protocol.websocket import encode_frame as _frame
from ._common import TransportCore, open_file_limit_hint, query_string, redact, socketio_path
from ._timers import Deadline, coarse_timers
from ._trace import DEBUG, WIRE, trace_connect, trace_frames, trace_messages
from .base import ConnectTarget
from .connector import Connector, default_connector

__all__ = ["CLOSE_TIMEOUT", "RECEIVE_BUFFER_SIZE", "WebSocketConnection"]

#: How long the server gets to end the TCP connection once a close frame was sent.
CLOSE_TIMEOUT = 2.0
#: The most one read takes off a socket (the size of asyncio's own reads).
RECEIVE_BUFFER_SIZE = 256 * 1024

_per_thread = threading.local()


def _receive_buffer() -> memoryview:
    """The buffer every connection of this thread reads into.

    asyncio's plain ``Protocol`` gets each read as a new 256 KiB ``bytes`` that is then shrunk:
    a large allocation glibc serves with mmap, mremap and munmap, three system calls and a
    page fault per read (about 10 µs; a round trip is 20). Reads go into this one buffer
    instead and are copied out at their size before anything else runs on the thread (one
    buffer per thread, not per connection: ten thousand connections hold none).
    """
    view: memoryview | None = getattr(_per_thread, "view", None)
    if view is None:
        view = _per_thread.view = memoryview(bytearray(RECEIVE_BUFFER_SIZE))
    return view


class WebSocketConnection(TransportCore, asyncio.BufferedProtocol):
    """The websocket half of a transport: one connection's bytes, as its asyncio protocol.

    Reading: the socket is read into the thread's shared buffer (:func:`_receive_buffer`),
    what arrives is parsed in the callback that got it (``data_received``) and the complete
    messages go to :meth:`_read` (to ``_backlog`` while reading is paused): no reader task, no
    queue, no future per message.

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
        "_rx",
        "_target",
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
        self._target: ConnectTarget | None = None  # for the wire trace's redaction
        # Reading: the upgrade's answer, then websocket frames.
        self._upgrade: ClientHandshake | None = None
        self._upgraded = False
        self._reader: FrameParser | None = None
        self._backlog: list[Message] | None = None  # read, not delivered: reading was paused
        self._paused = False  # pause_reading() was called
        self._halted = False  # nothing more is read: lost, closed or failed
        self._resume_handle: asyncio.Handle | None = None
        self._rx: memoryview | None = None  # the thread's receive buffer, once connected
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
        # What is worked out here is not kept in this frame while the connection opens: a
        # thousand sessions connecting at once would each hold it until their handshakes end.
        host, port, secure = self._prepare_upgrade(target)
        if WIRE.isEnabledFor(DEBUG):
            # Kept only for the trace (to redact its path): a session not traced holds less.
            self._target = target
            scheme = "wss" if secure else "ws"
            trace_connect(f"{scheme}://{self._where}{socketio_path(target)}", target)
        connector = self._connector
        try:
            proxy = proxy_for(target.origin, target.proxy)
            await connector.connect(
                self,
                host,
                port,
                ssl=connector.ssl_context(target.ssl) if secure else None,
                proxy=proxy,
            )
        except OSError as exc:  # refused, unreachable, unknown host, TLS failures
            detail = redact(f"{type(exc).__name__}: {exc}", target)
            if exc.errno == errno.EMFILE:
                detail += f" ({open_file_limit_hint()})"
            raise ConnectionError(f"cannot connect to {self._where}: {detail}") from None
        assert self._tx is not None
        assert self._upgrade is not None
        self._tx.write(self._upgrade.request)

    def _prepare_upgrade(self, target: ConnectTarget) -> tuple[str, int, bool]:
        """Builds the upgrade request; returns the host, port and whether to use TLS."""
        url = URL(target.origin)
        secure = url.scheme in ("https", "wss")
        extra = query_string(target)
        self._upgrade = ClientHandshake(
            host=host_header(url.raw_host or "", url.explicit_port),
            # (the user's query is encoded already: appended, never re-quoted by yarl)
            resource=URL.build(path=socketio_path(target)).raw_path
            + "?EIO=4&transport=websocket"
            + (f"&{extra}" if extra else ""),
            where=self._where,
            headers=target.headers,
        )
        return url.host or "", url.port or (443 if secure else 80), secure

    # ----------------------------------------------------------------------- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports implement asyncio.Transport without deriving from it)
        tx = self._tx = cast(asyncio.Transport, transport)
        tx.set_write_buffer_limits(high=self._high, low=self._low)
        self._rx = _receive_buffer()

    def get_buffer(self, sizehint: int) -> memoryview:
        rx = self._rx
        if rx is None:  # (the loop reads only after connection_made, which sets it)
            rx = self._rx = _receive_buffer()
        return rx

    def buffer_updated(self, nbytes: int) -> None:
        # Copied out before anything runs that could read another connection into the buffer.
        rx = self._rx
        assert rx is not None
        self.data_received(rx[:nbytes].tobytes())

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drainers(None)

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
            if WIRE.isEnabledFor(DEBUG):
                trace_messages(messages, self._target)
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
        if WIRE.isEnabledFor(DEBUG):
            trace_frames(frames, self._target)
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
