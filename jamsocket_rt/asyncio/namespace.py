"""A Socket.IO namespace on a Session's connection: events out, events in, calls.

:class:`Namespace` is socket.io-client's Socket: its own CONNECT (with its ``auth``) and socket
id, listeners, ``send``/``call``/``wait_for``/``stream``, the sends queued while it is not
connected, and the calls in flight. Every namespace of a Session shares the Session's one
connection (:class:`~jamsocket_rt.asyncio.connection.Connection`); the Session is itself the
namespace it was created for ("/" by default). This module is the public surface; what the
connection and the Session's lifecycle drive (events delivered, the queue written, calls set
aside or failed) is its base's, :class:`~jamsocket_rt.asyncio._namespace_core.NamespaceCore`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._errors import ConnectionLost, Disconnected, JamsocketError, SessionClosed
from ..protocol.options import Auth
from ..protocol.recovery import Recovery
from ..protocol.session import (
    LatencyEstimate,
    Listeners,
    Outbox,
    Outgoing,
    check_event_name,
    checked_copy,
    structure_payload,
    to_wire,
)
from ..transport._timers import CoarseTimers, coarse_timers
from ..transport.base import Transport
from ._calls import _Call, _Default
from ._namespace_core import NamespaceCore
from ._util import timeout as _timeout
from .stream import EventStream

if TYPE_CHECKING:
    from .connection import Connection


class Namespace(NamespaceCore):
    """One Socket.IO namespace on a Session's connection (see ``Session.namespace()``).

    It has the Session's event API: :meth:`on`/:meth:`off`, :meth:`send`, :meth:`call`,
    :meth:`wait_for`, :meth:`stream`, :attr:`connected`, :meth:`on_disconnect`,
    :meth:`on_reconnect` and :meth:`on_error`, with the same rules (sends queue in order while
    it is not connected; calls fail with ConnectionLost when the connection drops, unless
    ``retry``). After a reconnect of the Session it sends its CONNECT again.

    Attributes:
        name: the namespace, e.g. ``"/admin"``.
        events_sent: events written to the connection.
        events_received: events received.
        dropped_volatile: volatile sends dropped because the namespace was not connected.
        last_round_trip: seconds of the last acknowledged call.
    """

    __slots__ = (
        "_auth",
        "_call_timeout",
        "_closed",
        "_connection",
        "_emit_nsp",
        "_failure",
        "_joined_waiter",
        "_latency",
        "_outbox",
        "_recovery",
        "_sid",
        "_stream_maxsize",
        "_streams",
        "_timers",
        "_waiters",
        "dropped_volatile",
        "last_round_trip",
        "name",
    )

    def __init__(
        self,
        connection: Connection,
        name: str,
        *,
        auth: Auth,
        max_queue: int,
        max_backlog: int,
        call_timeout: float | None,
        stream_maxsize: int,
        root: bool = False,
    ) -> None:
        super().__init__(max_backlog)
        self._connection = connection
        self.name = name
        self._auth = auth if auth is None or callable(auth) else dict(auth)
        # The transport's own namespace needs no name on emit (the hot path).
        self._emit_nsp: str | None = None if root else name
        self._call_timeout = call_timeout
        self._stream_maxsize = stream_maxsize
        self._outbox: Outbox[_Call] = Outbox(maxsize=max_queue)
        self._inflight: dict[int, _Call] = {}
        self._unanswered: list[_Call] = []  # cut by a connection loss, awaiting the verdict
        self._waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self._streams: Listeners[EventStream] = Listeners()
        self._timers: CoarseTimers | None = None  # the loop's, once a call has a timeout
        self._closed = False
        self._failure: JamsocketError | None = None
        # True while this namespace's CONNECT is answered on the current connection (the root
        # namespace's is part of opening the connection).
        self._joined = root
        self._sid: str | None = None
        self._joined_waiter: asyncio.Future[None] | None = None
        # Connection state recovery: pid and last offset, kept across connections.
        self._recovery = Recovery()
        self.events_sent = 0
        self.events_received = 0
        self.dropped_volatile = 0
        self.last_round_trip: float | None = None
        self._latency = LatencyEstimate()

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """True while this namespace is connected."""
        transport = self._connection.transport
        return transport is not None and transport.connected and self._joined

    @property
    def sid(self) -> str | None:
        """The socket id of this namespace on the current connection (None while disconnected)."""
        if self._emit_nsp is None:
            transport = self._connection.transport
            return transport.sid if transport is not None else None
        return self._sid if self.connected else None

    @property
    def recovered(self) -> bool:
        """Whether the last (re)connect of this namespace recovered its connection state.

        True only when the server has ``connectionStateRecovery`` on and restored the socket
        it had before the cut: same :attr:`sid`, and every event it emitted meanwhile delivered
        (once, in order, before anything newer). False on the first connect, when the server has
        recovery off, when the cut outlasted its ``maxDisconnectionDuration``, when nothing with
        an offset had arrived before the cut, and over python-socketio's long-polling: then
        what the server emitted during the cut is lost. Read it in an ``on_reconnect`` hook to
        tell a recovered gap from a lost one.
        """
        return self._recovery.recovered

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def _transport(self) -> Transport | None:
        return self._connection.transport

    def __repr__(self) -> str:
        return f"<Namespace {self.name!r} connected={self.connected}>"

    def _hold_reading(self, reason: object) -> None:
        self._connection.hold_reading(reason)

    def _release_reading(self, reason: object) -> None:
        self._connection.release_reading(reason)

    @property
    def latency(self) -> LatencyEstimate:
        """Round-trip time of this namespace's calls (see :class:`LatencyEstimate`)."""
        return self._latency

    # ------------------------------------------------------------------ sending

    async def send(self, event: str, *args: Any, volatile: bool = False) -> None:
        """Send an event without waiting for an answer (fire-and-forget).

        Allowed before the backend is ready and while disconnected: the event is queued, in
        order, and sent on (re)connect. An event handed to a connection that then drops may be
        lost; use :meth:`call` when you need to know.

        With ``volatile=True`` (socket.io-client's ``socket.volatile.emit``) the event is
        dropped instead of queued when it cannot be written at once (the namespace is not
        connected, or queued sends are still being flushed), and counted in
        :attr:`dropped_volatile`: for state where only the latest matters (game inputs).

        Raises:
            TypeError: an argument cannot be serialized, or ``event`` is not a string (nothing
                was queued).
            ValueError: ``event`` is empty or one of Socket.IO's reserved names.
            SendQueueFull: ``max_queue`` sends are already waiting.
            BackendTerminated: the backend has terminated.
        """
        check_event_name(event)
        if self._closed or self._failure is not None:
            self._check_usable()  # raises
        if self._loop is not None:
            self._own_loop()  # (before connect() there is no loop yet: the send is queued)
        wire = to_wire(args)
        transport = self._connection.transport
        if transport is not None and transport.connected and self._joined and not self._outbox:
            try:
                if self._emit_nsp is None:
                    transport.emit(event, wire)
                else:
                    transport.emit(event, wire, None, self._emit_nsp)
            except ConnectionError:
                pass
            else:
                self.events_sent += 1
                if self._any_outgoing:
                    self._notify_outgoing(event, wire)
                await transport.drain()
                return
        if volatile:  # it cannot be written now: never queued
            self.dropped_volatile += 1
            return
        self._outbox.put(Outgoing(event, checked_copy(wire)))

    async def call(
        self,
        event: str,
        *args: Any,
        timeout: float | _Default | None = _Default.DEFAULT,
        retry: bool = False,
        type: Any = None,
    ) -> Any:
        """Send an event and wait for the backend's acknowledgement.

        Args:
            event: the event name.
            *args: its arguments.
            timeout: seconds to wait (default: the session's ``call_timeout``).
            retry: if the connection drops before the answer, send it again after the
                reconnect (at-least-once) instead of raising ConnectionLost.
            type: structure the acknowledgement into this type (an attrs class, a
                dataclass...) with the project's converter.

        Returns:
            The acknowledgement: None for no arguments, the value for one, else a tuple.

        Raises:
            TimeoutError: no answer within ``timeout``.
            ConnectionLost: the connection dropped first (and ``retry`` was False).
            BackendTerminated: the backend terminated first.
            TypeError: an argument cannot be serialized, or ``event`` is not a string (nothing
                was sent).
            ValueError: ``event`` is empty or one of Socket.IO's reserved names.
            InvalidResponse: the acknowledgement does not fit ``type`` (fields named).
        """
        check_event_name(event)
        if self._closed or self._failure is not None:
            self._check_usable()  # raises
        wire = to_wire(args)
        loop = self._own_loop()
        effective = self._call_timeout if isinstance(timeout, _Default) else timeout
        future: asyncio.Future[Any] = loop.create_future()
        # A call that may be sent again keeps a copy: the caller may change its arguments.
        args_kept = checked_copy(wire) if retry else wire
        call = _Call(event, args_kept, future, retry, self._inflight)
        transport = self._connection.transport
        if transport is not None and transport.connected and self._joined and not self._outbox:
            try:
                self._write(transport, event, call.args, call)
            except ConnectionError:
                self._outbox.put(Outgoing(event, checked_copy(wire), call))
        else:
            call.args = checked_copy(wire)
            self._outbox.put(Outgoing(event, call.args, call))
        started = loop.time()
        if effective is not None:
            # One loop timer per 1/64 s for all calls, not one each (call_later and cancel
            # cost more than the rest of a pipelined call).
            timers = self._timers
            if timers is None:
                timers = self._timers = coarse_timers(loop)
            call.timer = timers.call_later_from(
                started, effective, self._call_timed_out, call, effective
            )
        try:
            result = await future
        except BaseException:
            self._inflight.pop(id(call), None)  # (an acknowledged call has left already)
            raise
        self.last_round_trip = loop.time() - started
        self._latency.add(self.last_round_trip)
        if type is not None:
            return structure_payload(result, type, f"the acknowledgement of {event!r}")
        return result

    def wait_for(
        self, event: str, timeout: float | None = None, *, type: Any = None
    ) -> Awaitable[Any]:
        """Wait for the next occurrence of ``event`` and return its payload.

        The wait starts when ``wait_for`` is *called*, not when it is awaited, so this never
        misses an answer that comes back quickly::

            pong = session.wait_for("pong", timeout=5)
            await session.send("ping")
            print(await pong)

        With ``type``, the payload is structured into it (see :meth:`on`).

        Raises:
            TimeoutError: ``timeout`` elapsed.
            BackendTerminated: the backend terminated first.
            InvalidResponse: the payload does not fit ``type`` (fields named).
        """
        self._check_usable()
        future: asyncio.Future[Any] = self._own_loop().create_future()
        self._waiters.setdefault(event, []).append(future)
        return self._await_event(event, future, timeout, type)

    async def _await_event(
        self, event: str, future: asyncio.Future[Any], timeout: float | None, payload_type: Any
    ) -> Any:
        try:
            async with _timeout(timeout):
                payload = await future
                if payload_type is None:
                    return payload
                return structure_payload(payload, payload_type, f"a {event!r} event")
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()
            raise TimeoutError(f"no {event!r} event within {timeout} s") from None
        finally:
            waiters = self._waiters.get(event)
            if waiters is not None and future in waiters:
                waiters.remove(future)

    def stream(
        self,
        event: str,
        *,
        maxsize: int | None = None,
        overflow: str = "error",
        type: Any = None,
    ) -> EventStream:
        """Every occurrence of ``event`` from now on, in order (see :class:`EventStream`).

        With ``type``, each payload is structured into it; one that does not fit raises
        InvalidResponse from the iteration (naming the fields).
        """
        self._check_usable()
        stream = EventStream(self, event, maxsize or self._stream_maxsize, overflow, type)
        self._streams.add(event, stream)
        return stream

    def on_disconnect(self, callback: Callable[[BaseException | None], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` when the connection ends: ``error`` is a
        :class:`~jamsocket_rt.Disconnected` whose ``reason`` says why in socket.io-client's
        words ("io server disconnect", "io client disconnect" for ``close()``, "ping timeout",
        "transport close", "transport error", "parse error"); its ``__cause__`` is the
        transport's error, if any. (For ``close()``, which ends the Session's tasks, only
        plain functions run: a coroutine callback is not awaited.)"""
        return self._hook("disconnect", callback)

    def on_reconnect(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` after a successful reconnect."""
        return self._hook("reconnect", callback)

    # ------------------------------------------------------------------ an extra namespace

    def _joined_as(self, sid: str) -> None:
        """The server accepted this namespace's CONNECT on the current connection."""
        rejoined = self._sid is not None
        self._sid = sid
        self._joined = True
        if self._joined_waiter is not None and not self._joined_waiter.done():
            self._joined_waiter.set_result(None)
        self._flush()
        if rejoined:
            self._fire("reconnect")

    def _refused(self, refused: JamsocketError) -> None:
        """The server refused this namespace's CONNECT: it is done (a refusal is final)."""
        self._joined = False
        self._failure = refused
        if self._joined_waiter is not None and not self._joined_waiter.done():
            self._joined_waiter.set_exception(refused)
            self._joined_waiter.exception()  # retrieved: nobody may be waiting
        self._fail_all(refused)

    def _ended_by_server(self, reason: str) -> None:
        """The server disconnected this namespace (socket.io-client does not reconnect it)."""
        self._joined = False
        self._set_aside()
        error = ConnectionAbortedError(f"the server disconnected namespace {self.name!r}")
        self._fire("disconnect", Disconnected.of(error, "io server disconnect"))
        lost = ConnectionLost(f"the server disconnected namespace {self.name!r} ({reason})")
        self._failure = lost
        self._fail_unanswered(lost)
        self._fail_all(lost)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the server has accepted this namespace's CONNECT.

        Raises:
            ConnectRefused: the server refused it (its data is on the exception).
            TimeoutError: ``timeout`` elapsed.
        """
        self._check_usable()
        if self.connected:
            return
        if self._joined_waiter is None or self._joined_waiter.done():
            self._joined_waiter = self._loop_or_raise().create_future()
        try:
            async with _timeout(timeout):
                await asyncio.shield(self._joined_waiter)
        except TimeoutError:
            raise TimeoutError(f"namespace {self.name!r} not connected after {timeout} s") from None

    async def __aenter__(self) -> Namespace:
        await self.wait_connected()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave this namespace (a DISCONNECT for it); the Session's connection stays open.

        Waiting calls, ``wait_for`` and streams end with :class:`SessionClosed`; idempotent.
        """
        if self._closed:
            return
        if self.connected:
            self._fire("disconnect", Disconnected.of(None, "io client disconnect"))
        self._closed = True
        self._joined = False
        self._fail_all(SessionClosed("the namespace was closed"))
        self._connection.leave(self)
        if self._dispatcher is not None and self._dispatcher is not asyncio.current_task():
            self._dispatcher.cancel()

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure.with_traceback(None)
        if self._closed:
            raise SessionClosed("the session is closed")
