"""The fast default transport: Engine.IO v4 / Socket.IO v5 over a websocket of its own.

The rules are sans I/O: Socket.IO and Engine.IO in
:class:`~jamsocket_rt.protocol.socketio.ClientProtocol`, the websocket's in
:mod:`jamsocket_rt.protocol.websocket`. The websocket connection (opened through a
:class:`~.connector.Connector`, read in the callback that got the bytes, written in batches,
closed as RFC 6455 says) is :class:`~.wsconnection.WebSocketConnection`'s; this module puts
Socket.IO on it: what the messages mean and the :class:`~.base.Transport` contract. How the
connection ends (a loss, the server's close frame, a malformed message, a failed handshake, the
liveness deadline: the server's ping interval plus its timeout) and how that is reported is
:class:`~._losses.LossReporting`'s, its base.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..protocol.engineio import ProtocolError, excerpt
from ..protocol.msgpack import MsgpackClientProtocol
from ..protocol.packets import JsonCodec
from ..protocol.recovery import Recovery
from ..protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
)
from ..protocol.websocket import (
    CLOSE_NORMAL,
    OP_PONG,
    Close,
    FrameParser,
    Message,
    Ping,
)
from ..protocol.websocket import MAX_RESPONSE_HEAD as MAX_RESPONSE_HEAD
from ._common import CLOSED as _CLOSED
from ._common import CONNECTED as _CONNECTED
from ._common import CONNECTING as _CONNECTING
from ._common import host_of, once_responder, redact
from ._losses import LossReporting
from ._timers import coarse_timeout
from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
    NamespaceListener,
    Transport,
    TransportListener,
)
from .connector import DNS_TTL as DNS_TTL
from .connector import Connector, default_connector
from .wsconnection import CLOSE_TIMEOUT as CLOSE_TIMEOUT

__all__ = ["WebSocketTransport"]

#: Default write-buffer water marks of :meth:`WebSocketTransport.drain`, in bytes.
WRITE_HIGH_WATER = 64 * 1024
WRITE_LOW_WATER = 16 * 1024

#: The default connector's DNS cache (under its name of old: ``_resolved.clear()`` forgets).
_resolved = default_connector().dns


class WebSocketTransport(LossReporting):
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

    __slots__ = ("_acks", "_handshake", "_json", "_nsp", "_proto")

    def __init__(
        self,
        *,
        json: JsonCodec | None = None,
        write_high_water: int = WRITE_HIGH_WATER,
        write_low_water: int = WRITE_LOW_WATER,
        connector: Connector | None = None,
    ) -> None:
        super().__init__(
            write_high_water=write_high_water, write_low_water=write_low_water, connector=connector
        )
        self._json = json
        self._proto: ClientProtocol | None = None
        self._nsp = "/"  # the connection's own namespace
        self._acks: dict[int, AckCallback] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Future[None] | None = None
        self._early_loss: BaseException | None = None

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
        handshake = self._prepare(target, loop)
        # On a coarse timer: asyncio.timeout() costs a loop timer (and a heap entry among a
        # thousand others when a thousand sessions connect at once).
        try:
            async with coarse_timeout(target.connect_timeout, self._took_too_long):
                await self._open_line(target)
                await handshake
            if self._phase is not _CONNECTING:
                raise ConnectionError(
                    f"the connection to {self._where} was closed while connecting"
                )
        except BaseException as exc:
            self._release()
            if self._phase is _CONNECTING:
                self._phase = _CLOSED
            if isinstance(exc, ProtocolError):
                detail = redact(f"{type(exc).__name__}: {exc}", target)
                raise ConnectionError(f"cannot connect to {self._where}: {detail}") from None
            # The rest is ours, with messages that name the host only: ConnectRefused,
            # TokenExpired, ConnectionError (see _open), or cancellation.
            raise
        self._phase = _CONNECTED
        loop.call_soon(self._release_events)
        if self._early_loss is not None:  # lost right after the server accepted
            loop.call_soon(self._report_early_loss)
        else:
            self._arm_liveness()

    def _prepare(
        self, target: ConnectTarget, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[None]:
        # Apart from connect(): its frame lives until the handshake ends, and with a thousand
        # sessions connecting at once, so would everything it held.
        self._hold_events()
        self._where = host_of(target)
        self._nsp = target.namespace
        self._reader = FrameParser(target.max_payload)
        # asyncio's own loops tell time with time.monotonic(): the same clock, called directly
        # (the protocol reads it for every message).
        clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._proto = (MsgpackClientProtocol if target.parser == "msgpack" else ClientProtocol)(
            auth=target.auth,
            json=self._json,
            max_payload=target.max_payload,
            clock=clock,
            namespace=target.namespace,
            recovery=target.recovery,
        )
        self._closed = loop.create_future()
        handshake = self._handshake = loop.create_future()
        return handshake

    def _took_too_long(self, seconds: float) -> str:
        return f"connecting to {self._where} took longer than {seconds} s"

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
        self,
        nsp: str,
        auth: Mapping[str, Any] | None,
        listener: NamespaceListener,
        recovery: Recovery | None = None,
    ) -> str:
        """See :meth:`Transport.open_namespace`."""
        future = self._join(nsp, listener)
        assert self._proto is not None
        try:
            self._proto.connect_namespace(nsp, auth, recovery)
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

    # ----------------------------------------------------------------------- closing

    def _on_lost(self) -> None:
        self._halted = True
        self._stop_timers()
        self._acks.clear()

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
            self._write(self._proto.send_disconnect())
            self._start_close(CLOSE_NORMAL)
            # The server answers the close frame and ends the connection (RFC 6455: the
            # server closes the TCP connection first).
            await self._await_server_close()
        self._stop_linger()
        self._release()


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: WebSocketTransport) -> Transport:
        return transport
