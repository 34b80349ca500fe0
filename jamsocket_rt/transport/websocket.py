"""The fast default transport: Engine.IO v4 / Socket.IO v5 spoken directly on aiohttp's websocket.

All protocol rules live in :class:`~jamsocket_rt.protocol.socketio.ClientProtocol`; this module
only moves frames. Per connection there is one reader task, one liveness timer handle (re-armed
once per ping window, not per message) and no writer task.

Writing: :meth:`WebSocketTransport.emit` must not await, but aiohttp's ``send_str`` is a
coroutine (it writes synchronously, then may await a drain). So frames are masked and framed
here and handed to the connection's asyncio transport directly. The first write of an event-loop
iteration goes out at once (no added latency); the later ones of the same iteration are joined
and written once by a ``call_soon`` callback (one syscall per iteration, not per frame, when
sends are pipelined). ``benchmarks/micro_transport.py`` compares this with writing every frame
at once, with always deferring to the callback, and with a writer task awaiting aiohttp's
public ``send_frame``. Back-pressure uses the asyncio transport's own flow control, with
:meth:`drain`'s high and low water marks as its limits.

Connections share one aiohttp ClientSession per event loop (no cookie jar, no connection
limit): a private session per connection costs several KiB and a connector each, which matters
at thousands of sessions. The session is closed when its last transport is released.
"""

from __future__ import annotations

import asyncio
import random
import ssl as _ssl
import struct
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from .._errors import TokenExpired
from ..protocol.engineio import ProtocolError
from ..protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    Frame,
    JsonCodec,
    State,
)
from ._common import Phase, TransportCore, host_of, once_responder, redact, socketio_path
from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
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

_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY
_PACK_LEN2 = struct.Struct("!BBH").pack
_PACK_LEN3 = struct.Struct("!BBQ").pack
# RFC 6455 wants unpredictable masks against proxy cache poisoning, not secret ones; aiohttp
# uses the same generator. A syscall per frame (os.urandom) would cost more than the framing.
_random_mask = random.Random().getrandbits


def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final client frame (RFC 6455 section 5.2)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = _PACK_LEN2(0x80 | opcode, 0xFE, length)
    else:
        header = _PACK_LEN3(0x80 | opcode, 0xFF, length)
    mask = _random_mask(32).to_bytes(4, "big")
    masked = bytearray(payload)
    _mask_in_place(mask, masked)
    return header + mask + masked


class _SharedSession:
    """One ClientSession per event loop, closed when its last user releases it."""

    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedSession]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(
            # Each backend is reached through its own token path: cookies from one connection
            # have no business in another, and a pooled connection limit would queue the
            # 101st websocket behind the first hundred.
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.users = 0

    @classmethod
    def acquire(cls, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        entry = cls._by_loop.get(loop)
        if entry is None or entry.session.closed:
            entry = cls._by_loop[loop] = cls()
        entry.users += 1
        return entry.session

    @classmethod
    async def release(cls, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession) -> None:
        entry = cls._by_loop.get(loop)
        if entry is None or entry.session is not session:  # pragma: no cover (defensive)
            return
        entry.users -= 1
        if entry.users == 0:
            # Forget it first: a transport connecting while this closes gets a fresh one.
            del cls._by_loop[loop]
            await session.close()


class WebSocketTransport(TransportCore):
    """One Socket.IO connection over aiohttp's websocket (see the module docstring).

    Args:
        json: the JSON codec (default: orjson when installed, else the standard library).
        session: an aiohttp ClientSession to open the websocket with (the caller closes it);
            by default one shared per event loop.
        write_high_water: :meth:`drain` waits while more than this many bytes are unsent...
        write_low_water: ...until the buffer is down to this many.
    """

    def __init__(
        self,
        *,
        json: JsonCodec | None = None,
        session: aiohttp.ClientSession | None = None,
        write_high_water: int = WRITE_HIGH_WATER,
        write_low_water: int = WRITE_LOW_WATER,
    ) -> None:
        if not 0 <= write_low_water <= write_high_water:
            raise ValueError("need 0 <= write_low_water <= write_high_water")
        super().__init__()
        self._json = json
        self._own_session = session is None
        self._session = session
        self._high = write_high_water
        self._low = write_low_water
        self._proto: ClientProtocol | None = None
        self._ws: aiohttp.ClientWebSocketResponse[Any] | None = None
        self._tx: asyncio.Transport | None = None
        self._acks: dict[int, AckCallback] = {}
        self._pending: list[bytes] = []
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[None] | None = None
        self._resume: asyncio.Future[None] | None = None  # set while reading is paused
        self._released = False

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
        host = host_of(target)
        if self._session is None:
            self._session = _SharedSession.acquire(loop)
        self._proto = ClientProtocol(
            auth=target.auth, json=self._json, max_payload=target.max_payload, clock=loop.time
        )
        try:
            await asyncio.wait_for(self._open(target), target.connect_timeout)
            if self._phase is not Phase.CONNECTING:
                raise ConnectionError(f"the connection to {host} was closed while connecting")
        except BaseException as exc:
            await self._release()
            if self._phase is Phase.CONNECTING:
                self._phase = Phase.CLOSED
            if isinstance(exc, asyncio.TimeoutError):
                raise TimeoutError(
                    f"connecting to {host} took longer than {target.connect_timeout} s"
                ) from None
            if isinstance(exc, (TokenExpired, asyncio.CancelledError)):
                raise
            if isinstance(exc, aiohttp.ClientResponseError):
                # Its str() would show the URL, token included.
                raise ConnectionError(
                    f"{host} refused the websocket: HTTP {exc.status} {exc.message}"
                ) from None
            if isinstance(exc, ConnectionError) and not isinstance(exc, aiohttp.ClientError):
                raise  # ours: the message is already safe
            if isinstance(exc, (aiohttp.ClientError, OSError, ProtocolError)):
                detail = redact(f"{type(exc).__name__}: {exc}", target)
                raise ConnectionError(f"cannot connect to {host}: {detail}") from None
            raise
        self._phase = Phase.CONNECTED
        self._arm_liveness()
        self._reader = loop.create_task(self._read_loop())
        loop.call_soon(self._release_events)

    async def _open(self, target: ConnectTarget) -> None:
        assert self._session is not None
        assert self._proto is not None
        origin = target.origin.rstrip("/")
        if origin.startswith("http"):
            origin = "ws" + origin[4:]
        url = f"{origin}{socketio_path(target)}?EIO=4&transport=websocket"
        try:
            ws = await self._session.ws_connect(
                url,
                headers=dict(target.headers),
                ssl=_ssl_argument(target.ssl),
                # Engine.IO pings at the packet level; aiohttp's own pings would be noise.
                # autoping stays on: it only answers the peer's websocket pings (RFC 6455).
                heartbeat=None,
                autoping=True,
                max_msg_size=target.max_payload,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 410:
                raise TokenExpired(
                    f"{host_of(target)} answered 410 Gone: the token is unknown or expired, "
                    "or its backend has ended"
                ) from None
            raise
        self._ws = ws
        self._tx = _raw_transport(ws)
        self._tx.set_write_buffer_limits(high=self._high, low=self._low)
        proto = self._proto
        while proto.state is not State.CONNECTED:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                events = proto.receive_text(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                events = proto.receive_bytes(msg.data)
            else:
                raise ConnectionError(
                    f"{host_of(target)} closed the websocket during the Socket.IO handshake"
                )
            self._write_now(proto.data_to_send())
            for event in events:
                if isinstance(event, ConnectError):
                    raise ConnectRefused(
                        f"{host_of(target)} refused the Socket.IO connection: {event.message}",
                        event.data,
                    )
                if isinstance(event, Connected):
                    self._sid = event.sid
                if isinstance(event, Event):
                    # Sent with (python-socketio: before) the CONNECT answer: held back until
                    # connect() has returned.
                    ack_id = event.ack_id
                    self._deliver_event(
                        event.name, event.args, None if ack_id is None else self._responder(ack_id)
                    )
                if isinstance(event, Disconnected):
                    raise ConnectionError(
                        f"{host_of(target)} disconnected during the Socket.IO handshake"
                    )

    # ----------------------------------------------------------------------- sending

    def emit(self, event: str, args: Sequence[Any], on_ack: AckCallback | None = None) -> None:
        """Encode one event and queue it for writing; never blocks and never awaits.

        Raises:
            TypeError: an argument cannot be serialized (nothing was written).
            ValueError: the encoded event exceeds the server's maxPayload (nothing was written).
            ConnectionError: the transport is not connected.
        """
        if self._phase is not Phase.CONNECTED:
            self._check_can_send()
        assert self._proto is not None
        frames, ack_id = self._proto.send_event(event, args, on_ack is not None)
        if on_ack is not None and ack_id is not None:
            self._acks[ack_id] = on_ack
        self._write(frames)

    def _write(self, frames: list[Frame]) -> None:
        if self._flush_handle is not None:
            # Not the first write of this loop iteration: join the batch _flush writes at its
            # end (pipelined sends cost one syscall per iteration, not one per frame).
            pending = self._pending
            for opcode, payload in frames:
                pending.append(_frame(opcode, payload))
            return
        # The first write of an iteration goes out at once: a lone send pays no extra latency.
        tx, loop = self._tx, self._loop
        assert tx is not None
        assert loop is not None
        if not tx.is_closing():  # else the reader reports the loss
            if len(frames) == 1:
                tx.write(_frame(*frames[0]))
            else:
                tx.write(b"".join([_frame(opcode, payload) for opcode, payload in frames]))
        self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending = self._pending
        if pending:
            self._pending = []
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
        self._flush_now()
        assert self._ws is not None
        protocol = self._ws._writer.protocol
        if protocol.writing_paused:
            try:
                await protocol._drain_helper()
            except (aiohttp.ClientError, OSError) as exc:
                raise ConnectionError(f"the connection was lost: {type(exc).__name__}") from None
            self._check_can_send()

    # ----------------------------------------------------------------------- receiving

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        error: BaseException | None = None
        try:
            while error is None and self._phase is Phase.CONNECTED:
                if self._resume is not None:  # paused: leave the bytes to TCP flow control
                    await self._resume
                    continue
                # _handle's frame owns the message: nothing of it stays referenced while this
                # waits for the next one (an idle connection keeps no payload alive).
                error = self._handle(await ws.receive())
        except ProtocolError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 (aiohttp reports trouble in many shapes)
            error = ConnectionResetError(f"the connection failed: {type(exc).__name__}: {exc}")
        finally:
            if self._lose(error):
                # The socket may still be open (protocol error, server disconnect): drop it now
                # rather than wait for a close handshake nobody needs.
                self._abort()
            if self._phase is Phase.LOST:
                await self._release()

    def _handle(self, msg: aiohttp.WSMessage) -> BaseException | None:
        """Feeds one websocket message to the protocol and acts on it; returns why to stop."""
        proto = self._proto
        assert proto is not None
        kind = msg.type
        if kind is _TEXT:
            events = proto.receive_text(msg.data)
        elif kind is _BINARY:
            events = proto.receive_bytes(msg.data)
        else:
            assert self._ws is not None
            return _closed_error(msg, self._ws)
        out = proto.data_to_send()
        if out:
            self._write(out)
        for event in events:
            if type(event) is Event:
                ack_id = event.ack_id
                self._deliver_event(
                    event.name, event.args, None if ack_id is None else self._responder(ack_id)
                )
            elif type(event) is Ack:
                callback = self._acks.pop(event.id, None)
                if callback is not None:
                    self._deliver_ack(callback, event.args)
            elif type(event) is Disconnected:
                return ConnectionAbortedError(f"the server ended the connection ({event.reason})")
        return None

    def _responder(self, ack_id: int) -> AckResponder:
        def send(args: Sequence[Any]) -> None:
            if self._phase is Phase.CONNECTED:
                assert self._proto is not None
                self._write(self._proto.send_ack(ack_id, args))

        return once_responder(send)

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
        if self._phase is not Phase.CONNECTED:
            return
        if not proto.expired(loop.time()):
            self._arm_liveness()
            return
        info = proto.open_info
        window = 0.0 if info is None else info.ping_interval + info.ping_timeout
        if self._lose(TimeoutError(f"no ping from the server for {window:g} s")):
            # Black-holed: no close handshake can complete; the reader sees EOF and cleans up.
            self._abort()

    # ----------------------------------------------------------------------- flow control

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading` (see the Transport contract)."""
        if self._resume is None and self._phase is Phase.CONNECTED:
            assert self._loop is not None
            self._resume = self._loop.create_future()
            # The server's pings now wait unread: silence is ours, not the server's.
            self._stop_timers()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`; idempotent."""
        resume, self._resume = self._resume, None
        if resume is None:
            return
        if not resume.done():  # (cancelled with a reader that was cancelled)
            resume.set_result(None)
        if self._phase is Phase.CONNECTED:
            assert self._proto is not None
            assert self._loop is not None
            self._proto.last_seen = self._loop.time()
            self._arm_liveness()

    # ----------------------------------------------------------------------- closing

    def _on_lost(self) -> None:
        self._stop_timers()
        self._acks.clear()

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _abort(self) -> None:
        self._pending.clear()
        if self._tx is not None:
            self._tx.abort()

    async def close(self) -> None:
        """Disconnect politely and release everything; idempotent. Pending acks never fire."""
        phase = self._phase
        if phase is Phase.CLOSED:
            return
        self._phase = Phase.CLOSED
        self._stop_timers()
        self._acks.clear()
        if phase is Phase.CONNECTED and self._proto is not None:
            self._write_now(self._proto.send_disconnect())
        if phase is Phase.CONNECTING:
            return  # connect() sees the phase, cleans up and raises
        reader = self._reader
        if reader is not None and not reader.done():
            if phase is Phase.CONNECTED:
                reader.cancel()
            # After a loss the reader is releasing the connection itself: let it finish.
            await asyncio.gather(reader, return_exceptions=True)
        await self._release()

    async def _release(self) -> None:
        """Closes the websocket and gives the session back (once)."""
        if self._released:
            return
        self._released = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._pending.clear()
        ws = self._ws
        try:
            if ws is not None and not ws.closed:
                await ws.close()
        except Exception:  # noqa: BLE001, S110 (the line is going away either way)
            pass
        finally:
            if self._tx is not None:
                self._tx.abort()
            session = self._session
            if session is not None and self._own_session:
                assert self._loop is not None
                await _SharedSession.release(self._loop, session)


def _ssl_argument(value: _ssl.SSLContext | bool | None) -> _ssl.SSLContext | bool:
    return True if value is None else value


def _raw_transport(ws: aiohttp.ClientWebSocketResponse[Any]) -> asyncio.Transport:
    # aiohttp exposes no public synchronous write; its writer keeps the asyncio transport.
    transport: asyncio.Transport | None = getattr(ws._writer, "transport", None)
    if transport is None:  # pragma: no cover
        raise RuntimeError("this aiohttp version does not expose the websocket's transport")
    return transport


def _closed_error(
    msg: aiohttp.WSMessage, ws: aiohttp.ClientWebSocketResponse[Any]
) -> BaseException:
    if msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, BaseException):
        exc = msg.data
        if isinstance(exc, aiohttp.WebSocketError) and exc.code == 1009:
            return ProtocolError(f"a message exceeded max_payload: {exc}")
        return ConnectionResetError(f"the websocket failed: {type(exc).__name__}: {exc}")
    code = ws.close_code
    return ConnectionResetError(
        "the connection was closed" + ("" if code is None else f" (websocket close code {code})")
    )


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: WebSocketTransport) -> Transport:
        return transport
