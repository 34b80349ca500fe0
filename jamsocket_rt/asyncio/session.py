"""The asyncio Session: a live Socket.IO session with one session backend.

See :class:`Session`. The rules it follows (queueing, status tracking, backoff, payload shape)
live in :mod:`jamsocket_rt.protocol.session`; the connection itself is a
:class:`~jamsocket_rt.transport.base.Transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import logging
import ssl as ssl_module
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

from .. import _display
from .._errors import (
    BackendTerminated,
    ConnectionLost,
    JamsocketError,
    ReadyTimeout,
    SessionClosed,
    StreamOverflow,
    TokenExpired,
)
from .._models import BackendState, ConnectResponse, redact_url
from ..protocol.session import (
    Backoff,
    LatencyEstimate,
    Listeners,
    Outbox,
    Outgoing,
    StatusTracker,
    TickSchedule,
    check_event_name,
    checked_copy,
    payload_of,
    structure_payload,
    to_wire,
)
from ..transport._timers import CoarseTimers, Deadline, coarse_timers
from ..transport.base import AckResponder, ConnectRefused, ConnectTarget, Transport
from . import status as status_hub

logger = logging.getLogger("jamsocket_rt.session")

F = TypeVar("F", bound=Callable[..., Any])
ResponseLike = ConnectResponse | Mapping[str, Any] | str | bytes
ConnectCallable = Callable[[], Awaitable[ConnectResponse]]
TransportFactory = Callable[[ConnectTarget], Transport]

_TRANSPORTS = ("websocket", "polling")
_OVERFLOW_POLICIES = ("error", "drop_oldest", "pause")

# The handler backlog's reason to pause reading (streams use themselves).
_BACKLOG = "backlog"

#: Seconds a reconnect refused with 410 waits for the ``terminated`` of a terminating backend.
ENDING_WAIT = 5.0

#: The event name that catches every event, as in python-socketio: ``handler(event, *args)``.
ANY_EVENT = "*"


class _Default(enum.Enum):
    """Marks 'use the session's default' where None means 'no timeout'."""

    DEFAULT = 0


class _Handler:
    """A registered callback and what we know about it (kept so dispatch does no inspection)."""

    __slots__ = ("fn", "is_async", "key")

    def __init__(self, fn: Callable[..., Any], key: Callable[..., Any] | None = None) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.key = fn if key is None else key  # what off() is given: the user's own function

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Handler):
            return bool(self.key == other.key)
        return bool(self.key == other)

    def __hash__(self) -> int:
        return hash(self.key)


class _Call:
    """A call waiting for its acknowledgement."""

    __slots__ = ("args", "event", "future", "inflight", "retry", "timer")

    def __init__(
        self,
        event: str,
        args: Sequence[Any],
        future: asyncio.Future[Any],
        retry: bool,
        inflight: dict[int, _Call] | None = None,
    ):
        self.event = event
        self.args = args
        self.future = future
        self.retry = retry
        self.inflight = inflight  # the session's calls in flight, left when acknowledged
        self.timer: Deadline | asyncio.TimerHandle | None = None

    def acked(self, args: list[Any]) -> None:
        """The transport's acknowledgement callback (a bound method: no closure per call)."""
        if self.inflight is not None:
            self.inflight.pop(id(self), None)
        self.resolve(args)

    def resolve(self, args: list[Any]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        future = self.future
        if not future.done():
            # payload_of(), inlined: this runs once per acknowledgement.
            future.set_result(None if not args else args[0] if len(args) == 1 else tuple(args))

    def fail(self, exc: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_exception(exc)


class EventStream(AsyncIterator[Any]):
    """Every occurrence of one event, in order, from the moment ``stream()`` was called.

    Buffers about ``maxsize`` events. When the consumer falls behind, the ``overflow`` policy
    applies: "error" (default) ends the iteration with :class:`StreamOverflow` once the
    buffered events are consumed; "drop_oldest" discards the oldest and counts them in
    ``dropped``; "pause" loses nothing: the session stops reading from the connection (every
    event waits, unread, in TCP buffers) until the consumer is down to half the buffer. A
    paused connection delivers no acknowledgement either, so a consumer must not await a
    ``call()`` while its stream is full. Use as ``async for payload in session.stream("event")``
    or as an async context manager; ``aclose()`` unregisters it.
    """

    def __init__(
        self,
        session: Session,
        event: str,
        maxsize: int,
        overflow: str,
        payload_type: Any = None,
    ) -> None:
        if overflow not in _OVERFLOW_POLICIES:
            raise ValueError(f"overflow: expected one of {_OVERFLOW_POLICIES}")
        if maxsize < 1:
            raise ValueError("maxsize: expected a positive integer")
        self._session = session
        self.event = event
        self._maxsize = maxsize
        self._overflow = overflow
        self._buffer: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._end: BaseException | None = None
        self.dropped = 0
        self._type = payload_type

    def _push(self, payload: Any) -> None:
        if self._end is not None:
            return
        if self._overflow == "pause":
            self._buffer.append(payload)
            if len(self._buffer) >= self._maxsize:
                self._session._hold_reading(self)
            self._wake()
            return
        if len(self._buffer) >= self._maxsize:
            if self._overflow == "drop_oldest":
                self._buffer.popleft()
                self.dropped += 1
            else:
                self._finish(
                    StreamOverflow(
                        f"stream({self.event!r}) consumer fell {self._maxsize} events behind"
                    )
                )
                return
        self._buffer.append(payload)
        self._wake()

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
            self._session._streams.remove(self.event, self)
            self._session._release_reading(self)
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._end is not None:
                if isinstance(self._end, StopAsyncIteration):
                    raise StopAsyncIteration
                raise self._end
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload = self._buffer.popleft()
        if self._overflow == "pause" and len(self._buffer) <= self._maxsize // 2:
            self._session._release_reading(self)
        if self._type is not None:
            return structure_payload(payload, self._type, f"a {self.event!r} event")
        return payload

    async def aclose(self) -> None:
        self._finish(StopAsyncIteration())

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Link:
    """Binds a Transport's reports to the Session while that transport is the current one."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def transport_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        if self.session._link is self:
            self.session._on_event(event, args, ack)

    def transport_lost(self, error: BaseException | None) -> None:
        if self.session._link is self:
            self.session._on_lost(error)


def _given(value: Any, *args: Any) -> Any:
    return value


def _typed_handler(
    event: str, handler: Callable[..., Any], payload_type: Any
) -> Callable[..., Any]:
    """Wraps ``handler`` so it receives the payload structured into ``payload_type``.

    A payload that does not fit raises InvalidResponse before the handler is called; the
    dispatcher reports it to ``on_error``.
    """
    what = f"a {event!r} event"
    if inspect.iscoroutinefunction(handler):

        async def typed_async(*args: Any) -> Any:
            return await handler(structure_payload(payload_of(args), payload_type, what))

        return typed_async

    def typed(*args: Any) -> Any:
        return handler(structure_payload(payload_of(args), payload_type, what))

    return typed


class Ticker:
    """A fixed-rate tick started by :meth:`Session.every`; ``cancel()`` stops it.

    Attributes:
        interval: seconds between ticks.
        ticks: how many times the function ran.
        overruns: ticks skipped because the function (or the loop) ran late.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.ticks = 0
        self.overruns = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def __repr__(self) -> str:
        return f"<Ticker every {self.interval} s: {self.ticks} ticks, {self.overruns} overruns>"


def coerce_response(response: ResponseLike) -> ConnectResponse:
    """A ConnectResponse from itself, a dict, or JSON text.

    Raises:
        InvalidResponse: the data does not fit (every bad field is named).
    """
    if isinstance(response, ConnectResponse):
        return response
    if isinstance(response, (str, bytes, bytearray)):
        return ConnectResponse.from_json(response)
    return ConnectResponse.from_dict(response)


def _positive(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if (
        value is None
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value <= 0
    ):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


class Session:
    """A live session with one session backend, over Socket.IO.

    ``async with Session(response) as s:`` waits until the backend is ready, opens the
    Socket.IO connection through the token path of ``response.url``, and keeps it open,
    reconnecting with backoff while the backend lives. Sends made before that (or while
    disconnected) are queued in order and flushed on (re)connect.

    Args:
        response: a ConnectResponse, its dict or its JSON. May be omitted when ``connect`` is
            given.
        connect: an async callable returning a fresh ConnectResponse (for the same key); used
            for the first response when ``response`` is omitted, and again whenever the proxy
            says the token has expired (HTTP 410).
        ready_timeout: seconds to wait for the backend to become ready (None: forever).
        call_timeout: default timeout of ``call`` in seconds (None: no timeout).
        connect_timeout: seconds for one Socket.IO handshake.
        transports: "websocket" and/or "polling", in order of preference.
        headers: extra HTTP headers for the Socket.IO handshake.
        auth: the Socket.IO ``auth`` payload (for example to hand the backend the
            secret_token).
        ssl: None verifies TLS certificates (the default); an SSLContext is used as is;
            ``False`` disables verification (explicitly, never by default).
        max_queue: how many sends and calls may wait for a connection.
        reconnect: reconnect after a connection loss (while the backend lives).
        reconnect_delay: (initial, maximum) backoff between reconnect attempts, seconds.
        disconnect_grace: after a connection loss, how long to wait for a ``terminated``
            status before trying to reconnect (the disconnect arrives a little before it).
        stream_maxsize: default buffer of ``stream()``.
        max_payload: largest inbound message accepted, in bytes; a larger one ends the
            connection (reported to ``on_disconnect``), which then reconnects.
        latency_probe: an event the backend acknowledges (the example backend's "echo"),
            called every ``latency_interval`` seconds while connected so that
            :attr:`latency` stays fresh when the session is idle; None (the default)
            measures the session's own calls only.
        latency_interval: seconds between latency probes.
        max_backlog: how many handler runs may wait for slow (async) handlers; at this
            high-water mark the session stops reading from the connection (back-pressure:
            nothing is dropped, everything waits unread) until the backlog is down to half.
            A handler that awaits ``call()`` while the backlog is full waits for an answer
            that cannot be read until the call times out: keep such handlers few and short.

    Raises:
        InvalidResponse: ``response`` does not fit.
        ValueError: an option is out of range (the message names it).
        TypeError: an unknown option.
    """

    def __init__(
        self,
        response: ResponseLike | None = None,
        *,
        connect: ConnectCallable | None = None,
        ready_timeout: float | None = 60.0,
        call_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        transports: Sequence[str] = ("websocket",),
        headers: Mapping[str, str] | None = None,
        auth: Mapping[str, Any] | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        max_queue: int = 10_000,
        reconnect: bool = True,
        reconnect_delay: tuple[float, float] = (0.1, 10.0),
        disconnect_grace: float = 0.25,
        stream_maxsize: int = 1000,
        max_payload: int = 16 * 1024 * 1024,
        max_backlog: int = 1000,
        latency_probe: str | None = None,
        latency_interval: float = 5.0,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        if response is None and connect is None:
            raise TypeError("Session needs a ConnectResponse or a connect= callable")
        _positive("ready_timeout", ready_timeout)
        _positive("call_timeout", call_timeout)
        _positive("connect_timeout", connect_timeout, allow_none=False)
        _positive("latency_interval", latency_interval, allow_none=False)
        if latency_probe is not None:
            check_event_name(latency_probe)
        _positive("disconnect_grace", disconnect_grace + 1e-9, allow_none=False)
        if isinstance(transports, str) or not transports or not set(transports) <= set(_TRANSPORTS):
            raise ValueError(f"transports: expected a sequence drawn from {_TRANSPORTS}")
        if not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError("max_queue: expected a positive integer")
        if not isinstance(stream_maxsize, int) or stream_maxsize < 1:
            raise ValueError("stream_maxsize: expected a positive integer")
        if not isinstance(max_backlog, int) or max_backlog < 2:
            raise ValueError("max_backlog: expected an integer of at least 2")
        if not isinstance(max_payload, int) or max_payload < 1:
            raise ValueError("max_payload: expected a positive integer")
        _positive("reconnect_delay[0]", reconnect_delay[0], allow_none=False)
        _positive("reconnect_delay[1]", reconnect_delay[1], allow_none=False)
        if connect is not None and not callable(connect):
            raise TypeError("connect: expected an async callable returning a ConnectResponse")

        self._response = coerce_response(response) if response is not None else None
        self._connect_fn = connect
        self._ready_timeout = ready_timeout
        self._call_timeout = call_timeout
        self._connect_timeout = float(connect_timeout)
        self._transports = tuple(transports)
        self._headers = dict(headers or {})
        self._auth = dict(auth) if auth is not None else None
        self._ssl = ssl
        self._reconnect = reconnect
        self._backoff = Backoff(initial=reconnect_delay[0], maximum=reconnect_delay[1])
        self._disconnect_grace = disconnect_grace
        self._stream_maxsize = stream_maxsize
        self._max_payload = max_payload
        self._max_backlog = max_backlog
        self._transport_factory = transport_factory or _default_transport_factory

        self._tracker = StatusTracker()
        self._outbox: Outbox[_Call] = Outbox(maxsize=max_queue)
        self._inflight: dict[int, _Call] = {}
        self._unanswered: list[_Call] = []  # cut by a connection loss, awaiting the verdict
        self._handlers: Listeners[_Handler] = Listeners()
        self._hooks: Listeners[_Handler] = Listeners()
        self._waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self._streams: Listeners[EventStream] = Listeners()
        self._backlog: deque[tuple[tuple[_Handler, ...], tuple[Any, ...], AckResponder | None]]
        self._backlog = deque()
        self._dispatcher: asyncio.Task[None] | None = None
        self._pausers: set[object] = set()  # why reading is paused (backlog, full streams)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: CoarseTimers | None = None  # the loop's, once a call has a timeout
        self._transport: Transport | None = None
        self._link: _Link | None = None
        self._subscription: status_hub.Subscription | None = None
        self._state_changed: asyncio.Event | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._started = False
        self._closed = False
        self._failure: JamsocketError | None = None
        self._status_error: JamsocketError | None = None

        self.events_sent = 0
        self.events_received = 0
        self.last_round_trip: float | None = None
        self._latency = LatencyEstimate()
        self._latency_probe = latency_probe
        self._latency_interval = latency_interval
        self._tickers: set[Ticker] = set()
        #: How many times reading was paused because handlers or streams fell behind.
        self.read_pauses = 0

    # ------------------------------------------------------------------ properties

    @property
    def response(self) -> ConnectResponse | None:
        """The ConnectResponse in use (renewed after a token expiry)."""
        return self._response

    @property
    def backend_id(self) -> str | None:
        return self._response.backend_id if self._response is not None else None

    @property
    def status(self) -> BackendState | None:
        """The latest BackendState seen."""
        return self._tracker.latest

    @property
    def ready(self) -> bool:
        """True once the backend has said it is ready (stays True until it terminates)."""
        return self._tracker.ready and self._tracker.terminal is None

    @property
    def terminated(self) -> BackendState | None:
        """The terminal BackendState, once the backend has terminated; else None."""
        return self._tracker.terminal

    @property
    def connected(self) -> bool:
        return self._transport is not None and self._transport.connected

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        status = self.status.status if self.status is not None else None
        url = redact_url(self._response.url) if self._response is not None else None
        return (
            f"<Session backend_id={self.backend_id!r} status={status!s} ready={self.ready} "
            f"connected={self.connected} url={url}>"
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Wait until the backend is ready, then open the Socket.IO connection.

        Raises:
            BackendTerminated: the backend terminated before it was ready.
            ReadyTimeout: it was not ready within ``ready_timeout``.
            TokenExpired: the proxy refused the token and there is no ``connect`` callable.
            ConnectionError: the connection could not be opened.
            TimeoutError: the handshake took longer than ``connect_timeout``.
        """
        if self._started:
            raise RuntimeError("connect() was already called on this Session")
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._state_changed = asyncio.Event()
        try:
            if self._response is None:
                self._response = await self._fetch_response()
            self._watch(self._response)
            await self._wait_ready()
            await self._open()
        except BaseException:
            await self.close()
            raise
        self._flush()
        if self._latency_probe is not None:
            self.every(self._latency_interval, self._probe_latency)

    async def _probe_latency(self) -> None:
        assert self._latency_probe is not None
        if self.connected:
            try:
                await self.call(self._latency_probe, timeout=self._latency_interval)
            except (JamsocketError, TimeoutError) as exc:  # the next probe will tell more
                logger.debug("latency probe failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Disconnect and release everything (tasks, connection, status watcher); idempotent.

        Waiting calls, ``wait_for`` and streams end with :class:`SessionClosed`.
        """
        if self._closed:
            return
        self._closed = True
        self._fail_all(SessionClosed("the session was closed"))
        tasks = [t for t in (self._reconnector, self._dispatcher) if t is not None]
        tasks += list(self._background)
        tasks += [ticker._task for ticker in self._tickers if ticker._task is not None]
        for task in tasks:
            if task is not asyncio.current_task():
                task.cancel()
        transport, self._transport, self._link = self._transport, None, None
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.close()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.aclose()
        for task in tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(BaseException):
                    await task

    # ------------------------------------------------------------------ readiness

    async def _fetch_response(self) -> ConnectResponse:
        assert self._connect_fn is not None
        response = await self._connect_fn()
        return coerce_response(response)

    def _watch(self, response: ConnectResponse) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._tracker = StatusTracker()
        self._status_error = None
        self._subscription = status_hub.subscribe(
            response, self._on_state, ssl=self._ssl, on_error=self._on_status_error
        )

    def _on_state(self, state: BackendState) -> None:
        if not self._tracker.update(state):
            return
        assert self._state_changed is not None
        self._state_changed.set()
        self._fire("status", state)
        if state.is_ready:
            self._fire("ready")
        elif state.is_terminated:
            self._on_terminated(state)

    def _on_status_error(self, error: JamsocketError) -> None:
        """The status can no longer be followed (a bad stream, a certificate that fails)."""
        self._status_error = error
        assert self._state_changed is not None
        self._state_changed.set()  # a wait for ready ends with this error
        if self._tracker.ready:
            # The connection goes on; termination is then heard from the proxy (a 410 on
            # reconnect leads to a probe of the status), not from the stream.
            self._fire("error", error)

    def _check_status_error(self) -> None:
        if self._status_error is not None and not self._tracker.ready:
            raise self._status_error

    async def _wait_ready(self) -> None:
        assert self._state_changed is not None
        if self._tracker.ready and self._tracker.terminal is None:
            # Known at once (the status watcher replays what it heard): no timer to arm, which
            # a thousand sessions opened together on one backend would all pay for.
            return
        try:
            async with _timeout(self._ready_timeout):
                while not self._tracker.ready:
                    if self._tracker.terminal is not None:
                        raise BackendTerminated(self._tracker.terminal)
                    self._check_status_error()
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            last = self.status.status if self.status is not None else "none yet"
            problem = self._subscription.last_problem if self._subscription else None
            raise ReadyTimeout(
                f"backend {self.backend_id} was not ready after {self._ready_timeout} s "
                f"(last status: {last}"
                + (f"; the status could not be read: {problem}" if problem else "")
                + ")"
            ) from None
        if self._tracker.terminal is not None:
            raise BackendTerminated(self._tracker.terminal)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the backend is ready.

        Raises:
            BackendTerminated: it terminated first.
            TimeoutError: ``timeout`` elapsed.
        """
        self._check_usable()
        try:
            async with _timeout(timeout):
                while not self.ready:
                    if self._tracker.terminal is not None:
                        raise BackendTerminated(self._tracker.terminal)
                    self._check_status_error()
                    assert self._state_changed is not None
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            raise TimeoutError(f"backend not ready after {timeout} s") from None

    def _on_terminated(self, state: BackendState) -> None:
        self._fire("terminated", state)
        self._fail_all(BackendTerminated(state))
        if self._reconnector is not None:
            self._reconnector.cancel()
        transport, self._transport, self._link = self._transport, None, None
        if transport is not None:
            self._spawn(transport.close())
        for ticker in list(self._tickers):
            ticker.cancel()

    # ------------------------------------------------------------------ timing

    @property
    def latency(self) -> LatencyEstimate:
        """Round-trip time to the backend: ``last`` and ``smoothed`` (seconds), ``samples``.

        Fed by every :meth:`call`, and by periodic probes when ``latency_probe`` is set.
        """
        return self._latency

    def every(
        self,
        interval: float,
        fn: Callable[[], Any],
        *,
        on_overrun: Callable[[int], Any] | None = None,
    ) -> Ticker:
        """Call ``fn()`` (sync or async) every ``interval`` seconds, at a fixed rate.

        The schedule is absolute (tick *n* is due at start + *n* x interval), so it does not
        drift. When ``fn`` or the loop runs late, missed ticks are skipped, not replayed in a
        burst, and counted in ``ticker.overruns`` (``on_overrun(missed)`` is told). An error
        in ``fn`` goes to ``on_error`` and the ticking goes on. It stops with ``cancel()``,
        ``close()``, or the backend's termination.

        Returns:
            The :class:`Ticker`.

        Raises:
            ValueError: ``interval`` is not a positive number.
        """
        if not callable(fn):
            raise TypeError("fn: expected a callable")
        self._check_usable()
        loop = self._loop_or_raise()
        ticker = Ticker(interval)
        schedule = TickSchedule(interval, loop.time())  # checks interval
        ticker._task = loop.create_task(self._tick(ticker, schedule, fn, on_overrun))
        self._tickers.add(ticker)
        ticker._task.add_done_callback(lambda _: self._tickers.discard(ticker))
        return ticker

    async def _tick(
        self,
        ticker: Ticker,
        schedule: TickSchedule,
        fn: Callable[[], Any],
        on_overrun: Callable[[int], Any] | None,
    ) -> None:
        loop = self._loop_or_raise()
        while True:
            deadline, missed = schedule.next(loop.time())
            if missed:
                ticker.overruns += missed
                if on_overrun is not None:
                    on_overrun(missed)
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                result = fn()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001 - user code: report it, keep ticking
                self._report_error(exc)
            ticker.ticks += 1

    # ------------------------------------------------------------------ display

    def _repr_html_(self) -> str:
        return _display.as_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(_display.as_text(self))

    def display(self) -> Any:
        """A live view for notebooks: an ipywidgets widget that redraws on every status and
        connection change; without ipywidgets, the text summary (``str``)."""
        widget = _display.live(self)
        return widget if widget is not None else _display.as_text(self)

    # ------------------------------------------------------------------ connection

    def _target(self, transport: str) -> ConnectTarget:
        assert self._response is not None
        parts = urlsplit(self._response.url)
        path = parts.path.rstrip("/") + "/socket.io/"
        return ConnectTarget(
            origin=f"{parts.scheme}://{parts.netloc}",
            socketio_path=path,
            headers=self._headers,
            auth=self._auth,
            transports=(transport,),
            ssl=self._ssl,
            connect_timeout=self._connect_timeout,
            max_payload=self._max_payload,
        )

    async def _open(self) -> None:
        """Open a transport, renewing the token through ``connect`` when the proxy says 410.

        Each allowed transport is tried in order ("websocket" then "polling" by default when
        both are allowed), so a network that breaks websockets still gets a session.
        """
        while True:
            try:
                transport = await self._open_first_working()
            except TokenExpired:
                # A 410 says "unknown, expired or ended": if the backend has ended, the status
                # says so (perhaps before the stream does); that is the better answer.
                if self._tracker.terminal is None and self._subscription is not None:
                    await self._subscription.probe()
                    if self._tracker.ending:
                        await self._await_end()
                if self._tracker.terminal is not None:
                    raise BackendTerminated(self._tracker.terminal) from None
                if self._tracker.ending:
                    ending = BackendTerminated(
                        self._tracker.latest,
                        "the session backend is terminating: the proxy no longer accepts it",
                    )
                    self._failure = ending
                    self._fail_all(ending)
                    raise ending from None
                if self._connect_fn is None:
                    raise
                await self._renew()
                continue
            if self._closed:
                await transport.close()
                raise SessionClosed("the session was closed")
            if self._tracker.terminal is not None:
                await transport.close()
                raise BackendTerminated(self._tracker.terminal)
            self._transport = transport
            if self._pausers:  # handlers or streams are still behind
                transport.pause_reading()
            return

    async def _open_first_working(self) -> Transport:
        for index, kind in enumerate(self._transports):
            target = self._target(kind)
            transport = self._transport_factory(target)
            link = _Link(self)
            self._link = link
            try:
                await transport.connect(target, link)
            except BaseException as exc:
                self._link = None
                with contextlib.suppress(Exception):
                    await transport.close()
                fallback = isinstance(exc, (OSError, TimeoutError)) and not isinstance(
                    exc, (TokenExpired, ConnectRefused)
                )
                if fallback and index + 1 < len(self._transports):
                    logger.info("%s transport failed (%s); trying the next", kind, exc)
                    continue
                raise
            return transport
        raise AssertionError("unreachable: transports is never empty")  # pragma: no cover

    async def _await_end(self) -> None:
        """Wait (a little) for the ``terminated`` of a backend that is terminating.

        The proxy refuses a backend as soon as it starts terminating; its end follows within
        its grace period. The stream may be resuming with backoff: read the status meanwhile.
        """
        assert self._state_changed is not None
        assert self._subscription is not None
        loop = self._loop_or_raise()
        deadline = loop.time() + ENDING_WAIT
        while self._tracker.terminal is None and loop.time() < deadline:
            self._state_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with _timeout(min(1.0, max(0.0, deadline - loop.time()))):
                    await self._state_changed.wait()
            if self._tracker.terminal is None:
                await self._subscription.probe()

    async def _renew(self) -> None:
        old = self._response
        self._response = await self._fetch_response()
        logger.info("token renewed for backend %s", self._response.backend_id)
        if old is None or self._response.backend_id != old.backend_id:
            self._watch(self._response)
            await self._wait_ready()

    def _on_lost(self, error: BaseException | None) -> None:
        self._transport = None
        self._link = None
        retried = []
        # A dict keeps insertion order: retried calls go out again in the order they were sent.
        for call in list(self._inflight.values()):
            if call.retry and not call.future.done():
                retried.append(Outgoing(call.event, call.args, call))
            else:
                self._unanswered.append(call)
        self._inflight.clear()
        self._outbox.push_front(retried)
        self._fire("disconnect", error)
        if self._closed or self._tracker.terminal is not None:
            return
        self._reconnector = self._loop_or_raise().create_task(
            self._recover(error), name="jamsocket_rt reconnect"
        )

    async def _recover(self, error: BaseException | None) -> None:
        # The disconnect reaches us a few milliseconds before the terminated status: wait for
        # it a moment, so that calls cut by a backend's end fail with BackendTerminated, and a
        # backend that is gone is not hammered with reconnects.
        await asyncio.sleep(self._disconnect_grace)
        lost = ConnectionLost(
            "the connection to the backend dropped while waiting for an acknowledgement"
            + (f" ({type(error).__name__})" if error is not None else "")
        )
        unanswered, self._unanswered = self._unanswered, []
        for call in unanswered:
            call.fail(lost)
        if not self._reconnect:
            self._failure = lost
            self._fail_all(lost)
            return
        self._backoff.reset()
        while not self._closed and self._tracker.terminal is None:
            try:
                await self._open()
            except (TokenExpired, ConnectRefused, BackendTerminated) as exc:
                # A refused CONNECT (e.g. auth) will be refused again: do not retry it.
                if not isinstance(exc, BackendTerminated):
                    self._failure = exc
                    self._fail_all(exc)
                return
            except (OSError, TimeoutError) as exc:
                delay = self._backoff.next_delay()
                logger.debug("reconnect failed (%s); next try in %.2f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            self._reconnector = None
            self._flush()
            self._fire("reconnect")
            return

    def _flush(self) -> None:
        """Write queued sends and calls in order while the connection is up."""
        transport = self._transport
        while self._outbox and transport is not None and transport.connected:
            item = self._outbox.pop()
            try:
                self._write(transport, item.event, item.args, item.call)
            except ConnectionError:
                self._outbox.push_front([item])
                return

    def _write(
        self, transport: Transport, event: str, args: Sequence[Any], call: _Call | None
    ) -> None:
        if call is None:
            transport.emit(event, args)
        else:
            if call.future.done():
                return
            transport.emit(event, args, call.acked)
            # Only once written: an emit that raises (TypeError) leaves nothing in flight.
            self._inflight[id(call)] = call
        self.events_sent += 1

    def _acked(self, call: _Call, args: list[Any]) -> None:
        self._inflight.pop(id(call), None)
        call.resolve(args)  # (the transport calls call.acked, which does the same)

    # ------------------------------------------------------------------ sending

    async def send(self, event: str, *args: Any) -> None:
        """Send an event without waiting for an answer (fire-and-forget).

        Allowed before the backend is ready and while disconnected: the event is queued, in
        order, and sent on (re)connect. An event handed to a connection that then drops may be
        lost; use :meth:`call` when you need to know.

        Raises:
            TypeError: an argument cannot be serialized, or ``event`` is not a string (nothing
                was queued).
            ValueError: ``event`` is empty or one of Socket.IO's reserved names.
            SendQueueFull: ``max_queue`` sends are already waiting.
            BackendTerminated: the backend has terminated.
        """
        check_event_name(event)
        if self._closed or self._failure is not None or self._tracker.terminal is not None:
            self._check_usable()  # raises
        wire = to_wire(args)
        transport = self._transport
        if transport is not None and transport.connected and not self._outbox:
            try:
                transport.emit(event, wire)
            except ConnectionError:
                pass
            else:
                self.events_sent += 1
                await transport.drain()
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
        if self._closed or self._failure is not None or self._tracker.terminal is not None:
            self._check_usable()  # raises
        wire = to_wire(args)
        loop = self._loop or self._loop_or_raise()
        effective = self._call_timeout if isinstance(timeout, _Default) else timeout
        future: asyncio.Future[Any] = loop.create_future()
        # A call that may be sent again keeps a copy: the caller may change its arguments.
        args_kept = checked_copy(wire) if retry else wire
        call = _Call(event, args_kept, future, retry, self._inflight)
        transport = self._transport
        if transport is not None and transport.connected and not self._outbox:
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

    def _call_timed_out(self, call: _Call, timeout: float) -> None:
        self._inflight.pop(id(call), None)
        self._outbox.remove_if(lambda item: item.call is call)
        call.fail(TimeoutError(f"no acknowledgement for {call.event!r} within {timeout} s"))

    # ------------------------------------------------------------------ receiving

    @overload
    def on(self, event: str, handler: None = None, *, type: Any = None) -> Callable[[F], F]: ...

    @overload
    def on(
        self, event: str, handler: Callable[..., Any], *, type: Any = None
    ) -> Callable[[], None]: ...

    def on(
        self, event: str, handler: Callable[..., Any] | None = None, *, type: Any = None
    ) -> Callable[[], None] | Callable[[F], F]:
        """Call ``handler(*args)`` for every ``event``; sync or async.

        Handlers run one at a time, in arrival order, on the event loop. When the server asks
        for an acknowledgement, the first handler's return value is sent as the answer.
        ``on("*", handler)`` catches every event as ``handler(event, *args)`` (after the
        event's own handlers; it answers acknowledgements only for events that have none). A
        handler that raises is logged and reported to ``on_error``; the session goes on.
        Listeners registered before ``connect()`` receive the very first events.

        With ``type`` (an attrs class, a dataclass...), the payload is structured with the
        project's converter and the handler gets the object; a payload that does not fit is
        reported to ``on_error`` as InvalidResponse naming the fields, and the handler is not
        called.

        Returns:
            A callable that removes the handler; used as a decorator (``@s.on("event")``),
            returns the function unchanged.
        """
        if handler is None:

            def decorator(fn: F) -> F:
                self.on(event, fn, type=type)
                return fn

            return decorator
        if not callable(handler):
            raise TypeError("handler: expected a callable")
        fn = handler if type is None else _typed_handler(event, handler, type)
        self._handlers.add(event, _Handler(fn, key=handler))

        def remove() -> None:
            self.off(event, handler)

        return remove

    def off(self, event: str, handler: Callable[..., Any]) -> bool:
        """Remove a handler; True if it was registered."""
        return self._handlers.remove(event, _Handler(handler))

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
        future: asyncio.Future[Any] = self._loop_or_raise().create_future()
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

    def _on_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        self.events_received += 1
        waiters = self._waiters.pop(event, None)
        if waiters or self._streams.get(event):
            payload = payload_of(args)
            for future in waiters or ():
                if not future.done():
                    future.set_result(payload)
            for stream in self._streams.get(event):
                stream._push(payload)
        handlers = self._handlers.get(event)
        if handlers:
            if len(handlers) == 1 and not handlers[0].is_async and not self._backlog:
                self._run_sync(handlers, tuple(args), ack)  # _dispatch's usual case, directly
            else:
                self._dispatch(handlers, tuple(args), ack)
        catch_all = self._handlers.get(ANY_EVENT)
        if catch_all:
            self._dispatch(catch_all, (event, *args), None if handlers else ack)

    # ------------------------------------------------------------------ hooks

    def on_ready(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` when the backend is ready (at once if it already is)."""
        return self._hook("ready", callback, replay=() if self.ready else None)

    def on_status(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        """Call ``callback(state)`` for every new BackendState."""
        return self._hook("status", callback)

    def on_terminated(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        """Call ``callback(state)`` when the backend terminates (at once if it has)."""
        terminal = self._tracker.terminal
        return self._hook("terminated", callback, replay=(terminal,) if terminal else None)

    def on_disconnect(self, callback: Callable[[BaseException | None], Any]) -> Callable[[], None]:
        """Call ``callback(error)`` when the connection drops (error: why, when known)."""
        return self._hook("disconnect", callback)

    def on_reconnect(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` after a successful reconnect."""
        return self._hook("reconnect", callback)

    def on_error(self, callback: Callable[[BaseException], Any]) -> Callable[[], None]:
        """Call ``callback(exception)`` when a handler or callback raises.

        Also when the status can no longer be followed once connected (termination is then
        heard from the proxy's 410 and a read of the status).
        """
        return self._hook("error", callback)

    def _hook(
        self, name: str, callback: Callable[..., Any], replay: tuple[Any, ...] | None = None
    ) -> Callable[[], None]:
        if not callable(callback):
            raise TypeError("callback: expected a callable")
        handler = _Handler(callback)
        self._hooks.add(name, handler)
        if replay is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch, (handler,), replay, None)

        def remove() -> None:
            self._hooks.remove(name, handler)

        return remove

    def _fire(self, name: str, *args: Any) -> None:
        handlers = self._hooks.get(name)
        if handlers:
            self._dispatch(handlers, args, None)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(
        self, handlers: tuple[_Handler, ...], args: tuple[Any, ...], ack: AckResponder | None
    ) -> None:
        # Sync handlers with nothing queued ahead of them run inline: no task per message.
        if not self._backlog and not any(h.is_async for h in handlers):
            self._run_sync(handlers, args, ack)
            return
        self._queue_handlers(handlers, args, ack)

    def _queue_handlers(
        self, handlers: tuple[_Handler, ...], args: tuple[Any, ...], ack: AckResponder | None
    ) -> None:
        self._backlog.append((handlers, args, ack))
        if len(self._backlog) >= self._max_backlog:
            self._hold_reading(_BACKLOG)
        if self._dispatcher is None and not self._closed:
            self._dispatcher = self._loop_or_raise().create_task(
                self._drain_backlog(), name="jamsocket_rt dispatch"
            )

    def _run_sync(
        self, handlers: tuple[_Handler, ...], args: tuple[Any, ...], ack: AckResponder | None
    ) -> None:
        answer: Any = None
        for index, handler in enumerate(handlers):
            try:
                result = handler.fn(*args)
            except Exception as exc:  # noqa: BLE001 - user code: report it, carry on
                self._handler_failed(handler, exc)
                continue
            if result is not None and inspect.isawaitable(result):
                # A plain function that returns a coroutine (a lambda calling an async
                # method): await it, and what follows it, in order, through the backlog.
                handler.is_async = True
                pending = _Handler(functools.partial(_given, result))
                if index == 0:
                    self._queue_handlers((pending, *handlers[1:]), args, ack)
                    return
                self._queue_handlers((pending, *handlers[index + 1 :]), args, None)
                break
            if index == 0:
                answer = result
        if ack is not None:
            self._answer(ack, answer)

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                handlers, args, ack = self._backlog[0]
                answer: Any = None
                for index, handler in enumerate(handlers):
                    try:
                        result = handler.fn(*args)
                        if inspect.isawaitable(result):
                            result = await result
                    except Exception as exc:  # noqa: BLE001 - user code: report, carry on
                        self._handler_failed(handler, exc)
                        continue
                    if index == 0:
                        answer = result
                if ack is not None:
                    self._answer(ack, answer)
                self._backlog.popleft()
                if len(self._backlog) <= self._max_backlog // 2:
                    self._release_reading(_BACKLOG)
        finally:
            self._dispatcher = None
            self._release_reading(_BACKLOG)

    def _hold_reading(self, reason: object) -> None:
        """Stop reading from the connection while ``reason`` (a backlog, a stream) is behind."""
        if reason in self._pausers:
            return
        if not self._pausers:
            self.read_pauses += 1
            logger.debug("handlers or streams are behind: reading paused")
            if self._transport is not None:
                self._transport.pause_reading()
        self._pausers.add(reason)

    def _release_reading(self, reason: object) -> None:
        if reason not in self._pausers:
            return
        self._pausers.discard(reason)
        if not self._pausers and self._transport is not None:
            self._transport.resume_reading()

    def _answer(self, ack: AckResponder, answer: Any) -> None:
        try:
            ack(() if answer is None else (answer,))
        # e.g. an unserializable answer, or the connection is gone
        except Exception as exc:  # noqa: BLE001
            self._report_error(exc)

    def _handler_failed(self, handler: _Handler, exc: Exception) -> None:
        if handler in self._hooks.get("error"):
            logger.error("on_error callback raised", exc_info=exc)
            return
        self._report_error(exc)

    def _report_error(self, exc: Exception) -> None:
        logger.error("a handler raised %s", type(exc).__name__, exc_info=exc)
        self._fire("error", exc)

    # ------------------------------------------------------------------ helpers

    def _fail_all(self, exc: JamsocketError) -> None:
        for call in [*self._inflight.values(), *self._unanswered]:
            call.fail(exc)
        self._inflight.clear()
        self._unanswered.clear()
        for item in self._outbox.remove_if(lambda item: item.call is not None):
            assert item.call is not None
            item.call.fail(exc)
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
        self._waiters.clear()
        for name in self._streams.names():
            for stream in self._streams.get(name):
                stream._finish(StopAsyncIteration() if isinstance(exc, SessionClosed) else exc)

    def _check_usable(self) -> None:
        if self._tracker.terminal is not None:
            raise BackendTerminated(self._tracker.terminal)
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise SessionClosed("the session is closed")

    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


@contextlib.asynccontextmanager
async def _timeout(seconds: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout`` for Python 3.10 too (raises TimeoutError)."""
    if seconds is None:
        yield
        return
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            yield
        return
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = loop.call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if fired:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()


def _default_transport_factory(target: ConnectTarget) -> Transport:
    if target.transports[0] == "websocket":
        from ..transport.websocket import WebSocketTransport

        return WebSocketTransport()
    from ..transport.python_socketio import PythonSocketIOTransport

    return PythonSocketIOTransport()
