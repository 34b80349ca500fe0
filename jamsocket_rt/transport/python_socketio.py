"""python-socketio's AsyncClient behind the Transport contract: long-polling and the rest.

The fast path is :mod:`.websocket`; this one exists for ``transports=("polling",)`` or
``("websocket", "polling")`` (python-engineio starts with polling and upgrades when both are
allowed), i.e. networks that break websockets.

How the contract maps onto python-socketio:

- No signal handlers (``handle_sigint=False``: python-socketio and python-engineio would
  otherwise install SIGINT handlers), no reconnection (the Session owns it), no logging
  (python-engineio logs the full URL, token included, at INFO when given a logger).
- Events arrive through a catch-all handler per namespace; when the server asked for an
  acknowledgement (see :mod:`._psio`), the handler awaits a future that the AckResponder
  resolves, and returns its arguments. More namespaces are opened on the live connection with
  python-socketio's own CONNECT handling.
- ``emit`` cannot await python-socketio's coroutine: it checks that the arguments serialize (so
  TypeError is raised at once, as the contract wants), queues them, and one writer task hands
  them over in order. ``drain`` waits until python-engineio has written what was handed over.
- No connection state recovery: python-socketio's client neither keeps the server's ``pid``
  nor sends it back, so every connection made here is a fresh socket on the server
  (``recovered`` is False), and the recovery handed in is forgotten (a later websocket
  connection must not take over a socket older than this one).
"""

from __future__ import annotations

import asyncio
import functools
import ssl as _ssl
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import socketio

from .._errors import TokenExpired, TransportBroke
from ..protocol.events import ConnectError
from ..protocol.msgpack import MsgpackCodec
from ..protocol.proxy import proxy_for
from ..protocol.recovery import Recovery
from ._common import (
    Phase,
    TransportCore,
    host_of,
    once_responder,
    query_string,
    redact,
    socketio_path,
)
from ._psio import (
    MAX_PACKETS_PER_BATCH,
    AsyncClient,
    ack_wanted,
    allow_large_polls,
    disconnect,
    is_gone,
    msgpack_packet_class,
    network_cause,
    plain_json,
    plain_msgpack,
)
from ._trace import DEBUG, WIRE, trace_connect
from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
    NamespaceListener,
    Transport,
    TransportListener,
)
from .websocket import WRITE_HIGH_WATER, WRITE_LOW_WATER

__all__ = ["PythonSocketIOTransport"]


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
        # (event, args, on_ack, encoded size, Engine.IO packets, namespace)
        self._queue: deque[tuple[str, tuple[Any, ...], AckCallback | None, int, int, str]]
        self._queue = deque()
        self._unwritten = 0  # bytes queued here or handed over but not yet written
        self._wakeup: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._ack_futures: set[asyncio.Future[list[Any]]] = set()
        self._ack_handlers: set[asyncio.Task[Any]] = set()
        self._refusal: Any = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._nsp = "/"
        self._where = ""
        self._plain: Callable[[list[Any]], tuple[list[Any], int, int]] = plain_json

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
        if target.recovery is not None:
            target.recovery.forget()
        host = host_of(target)
        allow_large_polls()
        ssl_context = target.ssl if isinstance(target.ssl, _ssl.SSLContext) else None
        through = proxy_for(target.origin, target.proxy)  # one origin: one proxy for all
        proxy = None if through is None else through.url

        def new_http_session() -> aiohttp.ClientSession:
            # python-engineio makes a new session whenever its own is closed, even while it
            # shuts down: sessions made here are closed by us once its tasks are done. This is
            # also the only way to hand it an SSLContext, or a proxy.
            connector = None if ssl_context is None else aiohttp.TCPConnector(ssl=ssl_context)
            session = aiohttp.ClientSession(connector=connector, proxy=proxy)
            self._http_sessions.append(session)
            return session

        client = self._client = AsyncClient(
            reconnection=False,
            logger=False,
            engineio_logger=False,
            handle_sigint=False,
            ssl_verify=target.ssl is not False,
            # Also each polling POST's limit: connect_timeout bounds the handshake by itself.
            request_timeout=max(5.0, target.connect_timeout + 1.0),
            websocket_extra_options={"max_msg_size": target.max_payload},
            http_session=new_http_session,
            serializer=msgpack_packet_class() if target.parser == "msgpack" else "default",
        )
        if target.parser == "msgpack":
            self._plain = plain_msgpack(MsgpackCodec())
        self._nsp = target.namespace
        self._where = host
        client.eio.target = target
        if WIRE.isEnabledFor(DEBUG):
            trace_connect(f"{target.origin.rstrip('/')}{socketio_path(target)}", target)
        client.on("*", self._on_event, namespace=self._nsp)
        client.on("disconnect", self._on_disconnect, namespace=self._nsp)
        client.on("connect_error", self._on_connect_error, namespace=self._nsp)
        # python-socketio delivers what a server sends with its CONNECT answer (or, for
        # python-socketio servers, before it) while connect() still runs: hold it back.
        self._hold_events()
        query = query_string(target)
        try:
            await asyncio.wait_for(
                client.connect(
                    # python-engineio puts the URL's query before its own on every request
                    target.origin.rstrip("/") + (f"/?{query}" if query else ""),
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
            if is_gone(exc):
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
                cause = network_cause(exc)
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
        return await self._receive(self._deliver_event, event, args)

    async def _receive(
        self,
        deliver: Callable[[str, list[Any], AckResponder | None], None],
        event: str,
        args: tuple[Any, ...],
    ) -> Any:
        if not ack_wanted.get():
            deliver(event, list(args), None)
            return None
        assert self._loop is not None
        answer: asyncio.Future[list[Any]] = self._loop.create_future()

        def send(ack_args: Sequence[Any]) -> None:
            # Refuse what python-socketio could not send, while the caller can still react.
            self._plain(list(ack_args))
            if not answer.done():
                answer.set_result(list(ack_args))

        handler = asyncio.current_task()
        self._ack_futures.add(answer)
        if handler is not None:
            self._ack_handlers.add(handler)
        try:
            deliver(event, list(args), once_responder(send))
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
        elif reason == socketio.AsyncClient.reason.TRANSPORT_ERROR:
            error = TransportBroke(f"the connection was lost ({reason})")
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
        self,
        nsp: str,
        auth: Mapping[str, Any] | None,
        listener: NamespaceListener,
        recovery: Recovery | None = None,
    ) -> str:
        """See :meth:`Transport.open_namespace` (python-socketio answers it internally; no
        connection state recovery: ``recovery`` is forgotten)."""
        if recovery is not None:
            recovery.forget()
        future = self._join(nsp, listener)
        client = self._client
        where = self._where

        async def on_event(event: str, *args: Any) -> Any:
            deliver = functools.partial(self._namespace_event, nsp)
            return await self._receive(deliver, event, args)

        async def on_connect() -> None:
            self._namespace_connected(nsp, client.namespaces.get(nsp) or "")

        async def on_refused(data: Any = None) -> None:
            message = f"{where} refused namespace {nsp}: {ConnectError(data).message}"
            self._namespace_refused(nsp, ConnectRefused(message, data))

        async def on_disconnect(reason: Any = None) -> None:
            if self._phase is Phase.CONNECTED:
                self._namespace_ended(nsp, "io server disconnect")

        for name, handler in (
            ("*", on_event),
            ("connect", on_connect),
            ("connect_error", on_refused),
            ("disconnect", on_disconnect),
        ):
            client.on(name, handler, namespace=nsp)
        packet = client.packet_class(socketio.packet.CONNECT, data=auth, namespace=nsp)
        try:
            await client._send_packet(packet)
        except Exception as exc:  # noqa: BLE001 (python-socketio fails in many shapes)
            self._leave(nsp)
            raise ConnectionError(f"cannot open namespace {nsp}: {type(exc).__name__}") from None
        return await future

    def close_namespace(self, nsp: str) -> None:
        """See :meth:`Transport.close_namespace`."""
        self._leave(nsp)
        client = self._client
        if client is not None and self._phase is Phase.CONNECTED and nsp in client.namespaces:
            del client.namespaces[nsp]
            packet = client.packet_class(socketio.packet.DISCONNECT, namespace=nsp)
            assert self._loop is not None
            task = self._loop.create_task(client._send_packet(packet))
            self._ack_handlers.add(task)
            task.add_done_callback(self._ack_handlers.discard)

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
        # Hand python-socketio what we checked, in types it knows.
        plain, size, count = self._plain([event, *args])
        namespace = self._nsp if nsp is None else nsp
        if namespace != self._nsp and namespace not in self._client.namespaces:
            raise ConnectionError(f"namespace {namespace!r} is not connected")
        self._queue.append((event, tuple(plain[1:]), on_ack, size, count, namespace))
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
                while (queue and packets + queue[0][4] <= MAX_PACKETS_PER_BATCH) or not packets:
                    event, args, on_ack, size, count, nsp = queue.popleft()
                    callback = self._ack_callback(on_ack)
                    await client.emit(event, args, namespace=nsp, callback=callback)
                    handed_over += size
                    packets += count
                # python-engineio queues what emit handed over; wait until it is written.
                await client.eio.queue.join()
            except Exception as exc:  # noqa: BLE001 (python-socketio fails in many shapes)
                self._lose(TransportBroke(f"sending failed: {type(exc).__name__}: {exc}"))
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
            await disconnect(client)
            # A handler still waiting for its acknowledgement runs in a task of its own.
            for answer in self._ack_futures:
                answer.cancel()
            handlers = [task for task in self._ack_handlers if task is not asyncio.current_task()]
            if handlers:
                await asyncio.gather(*handlers, return_exceptions=True)
        sessions, self._http_sessions = self._http_sessions, []
        for session in sessions:
            await session.close()


if TYPE_CHECKING:  # the contract is a Protocol: let the type checker hold us to it

    def _conforms(transport: PythonSocketIOTransport) -> Transport:
        return transport
