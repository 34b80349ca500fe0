"""The fast default transport: Engine.IO v4 / Socket.IO v5 over a websocket of its own.

The rules live elsewhere, sans I/O: Socket.IO and Engine.IO in
:class:`~jamsocket_rt.protocol.socketio.ClientProtocol`, the websocket (upgrade, framing,
close codes) in :mod:`jamsocket_rt.protocol.websocket`; opening TCP and TLS connections, with
the DNS and TLS caches that connections share, is a
:class:`~jamsocket_rt.transport.connector.Connector`'s. This module moves bytes between them
and the network.

Reading: the transport is its connection's asyncio protocol. What arrives is parsed and
delivered in the same callback (``data_received``), with no reader task, no queue and no future
per message, so a connection is one object, one asyncio transport and one liveness timer,
re-armed once per ping window.

Writing: :meth:`WebSocketTransport.emit` must not await. Frames are masked and framed at once
and handed to the asyncio transport directly. A write on a quiet connection goes out at once
(no added latency); writes that follow it in the same event-loop iteration, and every write
while the connection is busy (the previous iteration wrote more than one batch), are joined and
written once by a ``call_soon`` callback at the end of the iteration: pipelined sends cost one
syscall per iteration, not one per frame, and reach the server in one piece. Back-pressure uses
the asyncio transport's own flow control, with :meth:`drain`'s high and low water marks as its
limits.

Closing follows RFC 6455 section 7: one close frame is sent (1000 from :meth:`close` or after
the server's Socket.IO goodbye, the :class:`ProtocolError`'s code when the server broke the
protocol, the server's own code when it closed first), and the server, which ends the TCP
connection first, gets :data:`CLOSE_TIMEOUT` seconds to do so before the connection is dropped.
A connection that stopped answering (no ping in time) is dropped at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

from ..protocol.engineio import ProtocolError, excerpt
from ..protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    Frame,
    JsonCodec,
)
from ..protocol.websocket import (
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    OP_CLOSE,
    OP_PONG,
    ClientHandshake,
    Close,
    FrameParser,
    Message,
    Ping,
    close_payload,
    host_header,
    is_valid_close_code,
)
from ..protocol.websocket import MAX_RESPONSE_HEAD as MAX_RESPONSE_HEAD
from ..protocol.websocket import encode_frame as _frame
from ._common import CLOSED as _CLOSED
from ._common import CONNECTED as _CONNECTED
from ._common import CONNECTING as _CONNECTING
from ._common import TransportCore, host_of, once_responder, redact, socketio_path
from ._timers import Deadline, coarse_timers
from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
    Transport,
    TransportListener,
)
from .connector import DNS_TTL as DNS_TTL
from .connector import Connector, default_connector

__all__ = ["WebSocketTransport"]

#: Default write-buffer water marks of :meth:`WebSocketTransport.drain`, in bytes.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024

#: How long the server gets to end the TCP connection once a close frame was sent.
CLOSE_TIMEOUT = 2.0

#: The default connector's DNS cache (under its name of old: ``_resolved.clear()`` forgets).
_resolved = default_connector().dns


def _cancel_on_timeout(task: asyncio.Task[Any], expired: list[bool]) -> None:
    expired.append(True)
    task.cancel()


class WebSocketTransport(TransportCore, asyncio.Protocol):
    """One Socket.IO connection over a websocket of its own (see the module docstring).

    Args:
        json: the JSON codec (default: orjson when installed, else the standard library).
        write_high_water: :meth:`drain` waits while more than this many bytes are unsent...
        write_low_water: ...until the buffer is down to this many.
        connector: opens the connection (default: :func:`.connector.default_connector`, whose
            DNS and TLS caches every transport of the process shares).

    Raises:
        ValueError: the water marks are not ``0 <= write_low_water <= write_high_water``.
    """

    __slots__ = (
        "_acks",
        "_backlog",
        "_busy",
        "_close_sent",
        "_closed",
        "_connector",
        "_drain_waiter",
        "_early_loss",
        "_flush_handle",
        "_halted",
        "_handshake",
        "_high",
        "_json",
        "_linger",
        "_low",
        "_paused",
        "_pending",
        "_pending_size",
        "_proto",
        "_reader",
        "_resume_handle",
        "_timer",
        "_tx",
        "_upgrade",
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
        connector: Connector | None = None,
    ) -> None:
        if not 0 <= write_low_water <= write_high_water:
            raise ValueError("need 0 <= write_low_water <= write_high_water")
        super().__init__()
        self._json = json
        self._high = write_high_water
        self._low = write_low_water
        self._connector = connector or default_connector()
        self._proto: ClientProtocol | None = None
        self._tx: asyncio.Transport | None = None
        self._acks: dict[int, AckCallback] = {}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._busy = False
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Reading: the upgrade's answer, then websocket frames.
        self._upgrade: ClientHandshake | None = None
        self._upgraded = False
        self._reader: FrameParser | None = None
        self._backlog: list[Message] | None = None  # read, not delivered: reading was paused
        self._paused = False  # pause_reading() was called
        self._halted = False  # nothing more is read: lost, closed or failed
        self._resume_handle: asyncio.Handle | None = None
        # Writing
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Lifecycle
        self._where = ""
        self._handshake: asyncio.Future[None] | None = None
        self._close_sent = False
        self._linger: Deadline | None = None  # drops the line if the server does not end it
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
        self._reader = FrameParser(target.max_payload)
        # asyncio's own loops tell time with time.monotonic(): the same clock, called directly
        # (the protocol reads it for every message).
        clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._proto = ClientProtocol(
            auth=target.auth, json=self._json, max_payload=target.max_payload, clock=clock
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
                await self._open(target)
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

    async def _open(self, target: ConnectTarget) -> None:
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
        self._stop_linger()
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

    def _handshake_error(self, error: BaseException) -> None:
        self._start_close(CLOSE_NORMAL)  # (only once the websocket is open)
        self._halted = True
        self._fail_handshake(error)
        self._drop()

    # ----------------------------------------------------------------------- reading

    def _read(self, messages: list[Message]) -> None:
        """Delivers ``messages`` until reading is paused (the rest waits for resume_reading())
        or the connection fails; a malformed message of any kind fails it with a
        ProtocolError, as does an invalid frame the reader found after them."""
        proto = self._proto
        assert proto is not None
        unread = iter(messages)
        try:
            for message in unread:
                if isinstance(message, str):
                    events: list[Any] = proto.receive_text(message)
                elif isinstance(message, bytes):
                    events = proto.receive_bytes(message)
                else:
                    events = []
                    if isinstance(message, Ping):
                        self._write([(OP_PONG, message.payload)])
                    elif isinstance(message, Close):
                        self._on_close_frame(message)
                if proto._outgoing:  # a PONG or the CONNECT (rare: no call for nothing)
                    self._write(proto.data_to_send())
                if events:
                    event = events[0]
                    if type(event) is Ack and len(events) == 1:  # the usual: an acknowledgement
                        callback = self._acks.pop(event.id, None)
                        if callback is not None:
                            try:
                                callback(event.args)
                            except Exception as exc:  # noqa: BLE001 (to the loop's handler)
                                self._report_error(exc, "an acknowledgement callback")
                    else:
                        self._dispatch(events)
                if self._paused or self._halted:
                    if not self._halted:
                        self._backlog = list(unread)
                    return
            reader = self._reader
            if reader is not None and reader.error is not None:
                raise reader.error
        except ProtocolError as exc:
            self._protocol_failed(exc)
        except Exception as exc:  # noqa: BLE001
            # Listeners' and callbacks' errors are caught where they are called: this is data
            # the decoders choked on (an ack id too long for int(), say). It ends this
            # connection, never the loop's exception handler.
            self._protocol_failed(
                ProtocolError(f"undecodable data: {type(exc).__name__}: {excerpt(str(exc))}")
            )

    def _on_close_frame(self, frame: Close) -> None:
        self._start_close(frame.code)  # the answer: the same code (RFC 6455 section 5.5.1)
        why = "" if frame.code is None else f" (websocket close code {frame.code})"
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
                self._deliver_event(
                    event.name, event.args, None if ack_id is None else self._responder(ack_id)
                )
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
        code = error.close_code
        self._start_close(code if is_valid_close_code(code) else CLOSE_PROTOCOL_ERROR)
        self._failed(error)

    def _failed(self, error: BaseException, while_connecting: BaseException | None = None) -> None:
        """The connection is gone or unusable. Before the server accepted the Socket.IO CONNECT,
        connect() raises ``while_connecting`` (default: ``error``); afterwards the loss is
        reported, once connect() has returned if it has not yet (after the events that came
        before the loss)."""
        self._start_close(CLOSE_NORMAL)  # unless one was sent, or the line is gone
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
        self._drop()

    def _report_early_loss(self) -> None:
        error = self._early_loss
        if error is not None and self._lose(error):
            self._release()

    def _responder(self, ack_id: int) -> AckResponder:
        def send(args: Sequence[Any]) -> None:
            if self._phase is _CONNECTED:
                assert self._proto is not None
                self._write(self._proto.send_ack(ack_id, args))

        return once_responder(send)

    # ----------------------------------------------------------------------- sending

    def emit(self, event: str, args: Sequence[Any], on_ack: AckCallback | None = None) -> None:
        """Encode one event and queue it for writing; never blocks and never awaits.

        Raises:
            TypeError: an argument cannot be serialized (nothing was written).
            ValueError: the encoded event exceeds the server's maxPayload (nothing was written).
            ConnectionError: the transport is not connected.
        """
        if self._phase is not _CONNECTED:
            self._check_can_send()
        assert self._proto is not None
        frames, ack_id = self._proto.send_event(event, args, on_ack is not None)
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
        if self._backlog is not None and self._resume_handle is None:
            # What arrived before the pause goes first (before anything read from now on).
            self._resume_handle = self._loop.call_soon(self._read_kept)

    def _read_kept(self) -> None:
        self._resume_handle = None
        backlog = self._backlog
        if backlog is not None and not (self._paused or self._halted):
            self._backlog = None
            self._read(backlog)

    # ----------------------------------------------------------------------- closing

    def _on_lost(self) -> None:
        self._halted = True
        self._stop_timers()
        self._acks.clear()

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_close(self, code: int | None) -> None:
        """Sends the close frame (once, and only on an open websocket), stops reading, and
        gives the server :data:`CLOSE_TIMEOUT` seconds to end the TCP connection, as RFC 6455
        section 7.1.1 asks of clients."""
        self._halted = True
        tx, loop = self._tx, self._loop
        if self._close_sent or not self._upgraded or tx is None or tx.is_closing():
            return
        assert loop is not None
        self._close_sent = True
        self._write_now([(OP_CLOSE, close_payload(code))])
        self._linger = coarse_timers(loop).call_later(CLOSE_TIMEOUT, self._abort)

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

    async def close(self) -> None:
        """Disconnect politely and release everything; idempotent. Pending acks never fire.

        Connected, it sends the Socket.IO DISCONNECT and a websocket close frame, then waits at
        most :data:`CLOSE_TIMEOUT` seconds for the server to end the connection. After a loss
        it drops what is left at once (a close handshake still under way included).
        """
        phase = self._phase
        if phase is _CLOSED:
            return
        self._phase = _CLOSED
        self._halted = True
        self._stop_timers()
        self._acks.clear()
        if phase is _CONNECTING:
            # connect() is waiting: it sees the phase, cleans up and raises.
            self._fail_handshake(
                ConnectionError(f"the connection to {self._where} was closed while connecting")
            )
            return
        tx, closed = self._tx, self._closed
        if phase is _CONNECTED and tx is not None and not tx.is_closing():
            assert self._proto is not None
            self._write(self._proto.send_disconnect())
            self._start_close(CLOSE_NORMAL)
            if closed is not None and not closed.done():
                # The server answers the close frame and ends the connection (RFC 6455: the
                # server closes the TCP connection first).
                await asyncio.wait([closed], timeout=CLOSE_TIMEOUT)
        self._stop_linger()
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
        self._reader = self._backlog = None
        self._drop()  # a no-op once the server has ended the connection


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: WebSocketTransport) -> Transport:
        return transport
