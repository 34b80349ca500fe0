"""python-socketio's AsyncClient behind the Transport contract: long-polling and the rest.

The fast path is :mod:`.websocket`; this one exists for ``transports=("polling",)`` or
``("websocket", "polling")`` (python-engineio starts with polling and upgrades when both are
allowed), i.e. networks that break websockets.

How the contract maps onto python-socketio:

- No signal handlers (``handle_sigint=False``: python-socketio and python-engineio would
  otherwise install SIGINT handlers), no reconnection (the Session owns it), no logging
  (python-engineio logs the full URL, token included, at INFO when given a logger).
- Events arrive through a catch-all handler. python-socketio tells a catch-all handler nothing
  about whether the server asked for an acknowledgement (it acknowledges with the handler's
  return value whenever it did), so ``_handle_event`` is wrapped to note that in a context
  variable for the duration of the handler; when set, the handler awaits a future that the
  AckResponder resolves, and returns its arguments.
- ``emit`` cannot await python-socketio's coroutine: it checks that the arguments serialize (so
  TypeError is raised at once, as the contract wants), queues them, and one writer task hands
  them over in order. ``drain`` waits until python-engineio has written what was handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl as _ssl
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import engineio
import socketio

from .._errors import ConfigurationError, TokenExpired
from ..protocol.events import ConnectError
from ..protocol.packets import (
    Packet,
    PacketType,
    StdlibJsonCodec,
    decode_packet,
    encode_packet,
    reconstruct,
)
from ._common import Phase, TransportCore, host_of, once_responder, redact, socketio_path
from .base import (
    AckCallback,
    ConnectRefused,
    ConnectTarget,
    NamespaceListener,
    Transport,
    TransportListener,
)
from .websocket import CLOSE_TIMEOUT, WRITE_HIGH_WATER, WRITE_LOW_WATER

__all__ = ["PythonSocketIOTransport"]

# python-socketio serializes with the standard library's json: check arguments the same way.
_STDLIB_JSON = StdlibJsonCodec()

_MAX_PACKETS_PER_BATCH = 16

# python-engineio refuses a long-polling payload of more than 16 packets, and drops the
# connection over it; a socket.io server sends everything it buffered between two polls in one
# payload, so a busy Node server exceeds that at once. The limit is a class attribute (so this
# raises it process-wide, python-engineio servers included); the server's maxPayload still
# bounds the payload's size.
_MAX_PACKETS_PER_POLL = 100_000

_ack_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("_ack_wanted", default=False)


class _EngineIOClient(engineio.AsyncClient):  # type: ignore[misc]
    """python-engineio's client, able to stop reading while the consumer is behind."""

    resume: asyncio.Future[None] | None = None  # set while reading is paused

    async def _receive_packet(self, pkt: Any) -> None:
        # The read loops (polling and websocket) await this for one packet at a time: waiting
        # here stops them reading, and leaves the rest to TCP flow control.
        while self.resume is not None:
            await self.resume
        await super()._receive_packet(pkt)


class _AsyncClient(socketio.AsyncClient):  # type: ignore[misc]
    """AsyncClient that lets the catch-all handler know whether the server wants an ack."""

    def _engineio_client_class(self) -> type[_EngineIOClient]:
        return _EngineIOClient

    async def _handle_event(self, namespace: str | None, id: int | None, data: list[Any]) -> None:
        # Every message is handled in its own task, so the variable is private to this event.
        _ack_wanted.set(id is not None)
        await super()._handle_event(namespace, id, data)


class PythonSocketIOTransport(TransportCore):
    """One Socket.IO connection through python-socketio's AsyncClient (see the module docstring).

    Args:
        write_high_water: :meth:`drain` waits while more than this many bytes of events are
            queued or unwritten...
        write_low_water: ...until python-engineio has written them down to this many.
    """

    def __init__(
        self,
        *,
        write_high_water: int = WRITE_HIGH_WATER,
        write_low_water: int = WRITE_LOW_WATER,
    ) -> None:
        if not 0 <= write_low_water <= write_high_water:
            raise ValueError("need 0 <= write_low_water <= write_high_water")
        super().__init__()
        self._high = write_high_water
        self._low = write_low_water
        self._client: Any = None
        self._http_sessions: list[aiohttp.ClientSession] = []
        # (event, args, on_ack, encoded size, Engine.IO packets)
        self._queue: deque[tuple[str, tuple[Any, ...], AckCallback | None, int, int]] = deque()
        self._unwritten = 0  # bytes queued here or handed over but not yet written
        self._wakeup: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._ack_futures: set[asyncio.Future[list[Any]]] = set()
        self._ack_handlers: set[asyncio.Task[Any]] = set()
        self._refusal: Any = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._nsp = "/"

    # ----------------------------------------------------------------------- connect

    async def connect(self, target: ConnectTarget, listener: TransportListener) -> None:
        """Open the connection and complete the Socket.IO CONNECT.

        Raises:
            TokenExpired: the proxy answered 410 Gone.
            ConnectRefused: the server answered the CONNECT with CONNECT_ERROR.
            ConnectionError: the connection or the handshake failed (names the host only).
            TimeoutError: ``target.connect_timeout`` elapsed.
        """
        loop = self._begin_connect(listener)
        host = host_of(target)
        if engineio.payload.Payload.max_decode_packets < _MAX_PACKETS_PER_POLL:
            engineio.payload.Payload.max_decode_packets = _MAX_PACKETS_PER_POLL
        ssl_context = target.ssl if isinstance(target.ssl, _ssl.SSLContext) else None

        def new_http_session() -> aiohttp.ClientSession:
            # python-engineio makes a new session whenever its own is closed, even while it
            # shuts down: sessions made here are closed by us once its tasks are done. This is
            # also the only way to hand it an SSLContext.
            connector = None if ssl_context is None else aiohttp.TCPConnector(ssl=ssl_context)
            session = aiohttp.ClientSession(connector=connector)
            self._http_sessions.append(session)
            return session

        client = self._client = _AsyncClient(
            reconnection=False,
            logger=False,
            engineio_logger=False,
            handle_sigint=False,
            ssl_verify=target.ssl is not False,
            # Also each polling POST's limit: connect_timeout bounds the handshake by itself.
            request_timeout=max(5.0, target.connect_timeout + 1.0),
            websocket_extra_options={"max_msg_size": target.max_payload},
            http_session=new_http_session,
        )
        self._nsp = target.namespace
        client.on("*", self._on_event, namespace=self._nsp)
        client.on("disconnect", self._on_disconnect, namespace=self._nsp)
        client.on("connect_error", self._on_connect_error, namespace=self._nsp)
        # python-socketio delivers what a server sends with its CONNECT answer (or, for
        # python-socketio servers, before it) while connect() still runs: hold it back.
        self._hold_events()
        try:
            await asyncio.wait_for(
                client.connect(
                    target.origin.rstrip("/"),
                    headers=dict(target.headers),
                    auth=dict(target.auth) if target.auth is not None else None,
                    transports=list(target.transports),
                    namespaces=[target.namespace],
                    socketio_path=socketio_path(target),
                    wait_timeout=target.connect_timeout,
                ),
                target.connect_timeout,
            )
            if self._phase is not Phase.CONNECTING:
                raise ConnectionError(f"the connection to {host} was closed while connecting")
        except BaseException as exc:
            if self._phase is Phase.CONNECTING:
                self._phase = Phase.CLOSED
            await self._start_shutdown()
            if isinstance(exc, asyncio.TimeoutError):
                raise TimeoutError(
                    f"connecting to {host} took longer than {target.connect_timeout} s"
                ) from None
            if _is_gone(exc):
                raise TokenExpired(
                    f"{host} answered 410 Gone: the token is unknown or expired, "
                    "or its backend has ended"
                ) from None
            if isinstance(exc, socketio.exceptions.ConnectionError):
                if self._refusal is not None:
                    message = ConnectError(self._refusal).message
                    raise ConnectRefused(
                        f"{host} refused the Socket.IO connection: {message}", self._refusal
                    ) from None
                detail = str(exc)
                cause = _network_cause(exc)
                if cause is not None:
                    detail += f" ({type(cause).__name__}: {cause})"
                raise ConnectionError(
                    f"cannot connect to {host}: {redact(detail, target)}"
                ) from None
            raise
        self._sid = client.get_sid(self._nsp)
        self._phase = Phase.CONNECTED
        loop.call_soon(self._release_events)
        self._writer = loop.create_task(self._write_loop())

    # ----------------------------------------------------------------------- receiving

    async def _on_event(self, event: str, *args: Any) -> Any:
        if not _ack_wanted.get():
            self._deliver_event(event, list(args), None)
            return None
        assert self._loop is not None
        answer: asyncio.Future[list[Any]] = self._loop.create_future()

        def send(ack_args: Sequence[Any]) -> None:
            # Refuse what python-socketio could not send, while the caller can still react.
            encode_packet(Packet(PacketType.ACK, list(ack_args), 0), _STDLIB_JSON)
            if not answer.done():
                answer.set_result(list(ack_args))

        handler = asyncio.current_task()
        self._ack_futures.add(answer)
        if handler is not None:
            self._ack_handlers.add(handler)
        try:
            self._deliver_event(event, list(args), once_responder(send))
            result = await answer
        finally:
            self._ack_futures.discard(answer)
            self._ack_handlers.discard(handler)
        # python-socketio sends a returned tuple as the ack's argument list.
        return tuple(result)

    async def _on_disconnect(self, reason: Any = None) -> None:
        if reason == socketio.AsyncClient.reason.SERVER_DISCONNECT:
            error: BaseException = ConnectionAbortedError(
                "the server ended the connection (io server disconnect)"
            )
        else:
            error = ConnectionResetError(f"the connection was lost ({reason})")
        self._lose(error)

    async def _on_connect_error(self, data: Any = None) -> None:
        # python-socketio reports Engine.IO failures here too; only a connected Engine.IO
        # can carry a CONNECT_ERROR.
        eio = self._client.eio
        if eio.state != "connected":
            return
        self._refusal = data
        # AsyncClient.connect() disconnects next, and would wait for the pending long-poll GET
        # (held by python-engineio servers until their next ping): abort it now.
        await eio.disconnect(abort=True)

    # ----------------------------------------------------------------------- sending

    @property
    def dropped_packets(self) -> int:
        """python-socketio drops packets of unknown namespaces without counting them: 0."""
        return 0

    async def open_namespace(
        self, nsp: str, auth: Mapping[str, Any] | None, listener: NamespaceListener
    ) -> str:
        """Not supported: python-socketio's client opens its namespaces while connecting only.

        Raises:
            ConfigurationError: always (use the websocket transport for more namespaces).
        """
        raise ConfigurationError(
            f"namespace {nsp!r}: the polling transport (python-socketio's client) cannot open a "
            "namespace on a live connection; use transports=('websocket',) for more namespaces"
        )

    def close_namespace(self, nsp: str) -> None:
        """Nothing to do: no extra namespace is ever open here."""

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
            ConnectionError: the transport is not connected.
        """
        self._check_can_send()
        frames = encode_packet(Packet(PacketType.EVENT, [event, *args]), _STDLIB_JSON)
        size = sum(len(payload) for _, payload in frames)
        # Hand python-socketio what we checked, in types it knows: it takes no memoryview,
        # and the caller may mutate its arguments after emit() returns.
        packet = decode_packet(frames[0][1][1:].decode(), _STDLIB_JSON)
        plain = reconstruct(packet.data, [payload for _, payload in frames[1:]])
        self._queue.append((event, tuple(plain[1:]), on_ack, size, len(frames)))
        self._unwritten += size
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _write_loop(self) -> None:
        assert self._loop is not None
        client, queue = self._client, self._queue
        while True:
            if not queue:
                self._wakeup = self._loop.create_future()
                await self._wakeup
                continue
            handed_over = packets = 0
            try:
                # python-engineio posts everything queued as one long-polling payload, and its
                # server refuses payloads of more than 16 packets.
                while (queue and packets + queue[0][4] <= _MAX_PACKETS_PER_BATCH) or not packets:
                    event, args, on_ack, size, count = queue.popleft()
                    await client.emit(
                        event, args, namespace=self._nsp, callback=self._ack_callback(on_ack)
                    )
                    handed_over += size
                    packets += count
                # python-engineio queues what emit handed over; wait until it is written.
                await client.eio.queue.join()
            except Exception as exc:  # noqa: BLE001 (python-socketio fails in many shapes)
                self._lose(ConnectionResetError(f"sending failed: {type(exc).__name__}: {exc}"))
                return
            self._unwritten -= handed_over
            drained = self._drained
            if drained is not None and self._unwritten <= self._low and not drained.done():
                drained.set_result(None)

    def _ack_callback(self, on_ack: AckCallback | None) -> Any:
        if on_ack is None:
            return None

        def callback(*args: Any) -> None:
            if self._phase is Phase.CONNECTED:
                self._deliver_ack(on_ack, list(args))

        return callback

    async def drain(self) -> None:
        """Wait while the outgoing buffer is above its high-water mark (back-pressure).

        Raises:
            ConnectionError: the transport is not connected, or was lost while waiting.
        """
        self._check_can_send()
        if self._unwritten <= self._high:
            return
        assert self._loop is not None
        if self._drained is None or self._drained.done():
            self._drained = self._loop.create_future()
        await asyncio.shield(self._drained)
        self._check_can_send()

    # ----------------------------------------------------------------------- flow control

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading` (see the Transport contract)."""
        if self._phase is Phase.CONNECTED and self._client.eio.resume is None:
            assert self._loop is not None
            self._client.eio.resume = self._loop.create_future()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`; idempotent."""
        if self._client is None:
            return
        resume, self._client.eio.resume = self._client.eio.resume, None
        if resume is not None and not resume.done():
            resume.set_result(None)

    # ----------------------------------------------------------------------- closing

    def _on_lost(self) -> None:
        self._stop()
        # python-engineio may still be connected (e.g. a failed send): take it down now.
        self._start_shutdown()

    def _stop(self) -> None:
        """Stops the writer, forgets the queue, and wakes everyone waiting on this transport."""
        if self._writer is not None:
            self._writer.cancel()
        self.resume_reading()  # a paused read loop could not see the disconnect
        self._queue.clear()
        for answer in self._ack_futures:
            answer.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)  # drain() then finds the transport not connected

    async def close(self) -> None:
        """Disconnect politely and release everything; idempotent. Pending acks never fire."""
        phase = self._phase
        if phase is Phase.CLOSED:
            return
        self._phase = Phase.CLOSED
        if phase is Phase.CONNECTING:
            return  # connect() sees the phase, cleans up and raises
        self._stop()
        await self._start_shutdown()

    def _start_shutdown(self) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            assert self._loop is not None
            self._shutdown_task = self._loop.create_task(self._shutdown())
        return self._shutdown_task

    async def _shutdown(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        client = self._client
        if client is not None:
            await _disconnect(client)
            # A handler still waiting for its acknowledgement runs in a task of its own.
            for answer in self._ack_futures:
                answer.cancel()
            handlers = [task for task in self._ack_handlers if task is not asyncio.current_task()]
            if handlers:
                await asyncio.gather(*handlers, return_exceptions=True)
        sessions, self._http_sessions = self._http_sessions, []
        for session in sessions:
            await session.close()


async def _disconnect(client: Any) -> None:
    """Disconnects politely but promptly, and waits until python-engineio's tasks are done.

    AsyncClient.disconnect() waits for the pending long-poll GET, which a python-engineio
    server holds until its next ping (up to pingInterval). Instead: send the Socket.IO
    DISCONNECT, wait (briefly) until it is written, then let python-engineio abort, which
    closes its HTTP session and with it the pending GET.
    """
    eio = client.eio
    if eio.state == "connected":
        disconnect = socketio.packet.Packet(socketio.packet.DISCONNECT, namespace="/")
        await eio.send(disconnect.encode())
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


def _network_cause(exc: BaseException) -> BaseException | None:
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


def _is_gone(exc: BaseException) -> bool:
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


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: PythonSocketIOTransport) -> Transport:
        return transport
