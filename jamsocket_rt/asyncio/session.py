"""The asyncio Session: a live Socket.IO session with one session backend.

A :class:`Session` is three things, each in a module of its own: the namespace it speaks
(:class:`~jamsocket_rt.asyncio.namespace.Namespace`: events, calls, listeners), its backend's
status (:class:`~jamsocket_rt.asyncio._backend.BackendWatch`: readiness, termination, token
renewal) and its one connection (:class:`~jamsocket_rt.asyncio.connection.Connection`, which
carries every namespace). What happens after a drop, a 410, a refusal, a termination or a close
is decided by the lifecycle table in :mod:`jamsocket_rt.protocol.lifecycle`; this module only
performs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _display
from .._errors import (
    BackendTerminated,
    ConnectionLost,
    ConnectRefused,
    JamsocketError,
    SessionClosed,
    TokenExpired,
)
from .._models import redact_url
from ..protocol.lifecycle import Action, Guards, Input, State, next_step
from ..protocol.options import SessionOptions, TransportName
from ..protocol.session import Backoff, LatencyEstimate, TickSchedule
from ..protocol.socketio import check_namespace
from ._backend import ENDING_WAIT, BackendWatch, ConnectCallable, ResponseLike, coerce_response
from ._handlers import ANY_EVENT
from .connection import Connection, TransportFactory
from .namespace import Namespace
from .stream import EventStream
from .ticker import Ticker, run_ticker

__all__ = [
    "ANY_EVENT",
    "ENDING_WAIT",
    "EventStream",
    "Namespace",
    "ResponseLike",
    "Session",
    "SessionOptions",
    "Ticker",
    "coerce_response",
]

logger = logging.getLogger("jamsocket_rt.session")

# The actions that wait for something; the others run at once.
_WAITS = frozenset(
    {
        Action.WAIT_READY,
        Action.OPEN,
        Action.WAIT_GRACE,
        Action.WAIT_BACKOFF,
        Action.PROBE_STATUS,
        Action.RENEW,
        Action.CLOSE,
    }
)
_Next = tuple[Input, BaseException | None] | None


class Session(Namespace, BackendWatch):
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
        namespace: the Socket.IO namespace this Session is ("/" by default); more namespaces
            share its connection through :meth:`namespace`.

    The options are validated once into a :class:`SessionOptions`; :meth:`from_options` takes
    one directly.

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
        transports: Sequence[TransportName] = ("websocket",),
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
        namespace: str = "/",
        transport_factory: TransportFactory | None = None,
    ) -> None:
        options = SessionOptions(
            ready_timeout=ready_timeout,
            call_timeout=call_timeout,
            connect_timeout=connect_timeout,
            transports=transports,
            headers=headers,
            auth=auth,
            ssl=ssl,
            max_queue=max_queue,
            reconnect=reconnect,
            reconnect_delay=reconnect_delay,
            disconnect_grace=disconnect_grace,
            stream_maxsize=stream_maxsize,
            max_payload=max_payload,
            max_backlog=max_backlog,
            latency_probe=latency_probe,
            latency_interval=latency_interval,
            namespace=namespace,
            transport_factory=transport_factory,
        )
        self._setup(response, connect, options)

    @classmethod
    def from_options(
        cls,
        response: ResponseLike | None = None,
        *,
        connect: ConnectCallable | None = None,
        options: SessionOptions,
    ) -> Session:
        """A Session with options validated beforehand (the load runner makes thousands).

        Raises:
            InvalidResponse: ``response`` does not fit.
            TypeError: neither ``response`` nor ``connect`` was given.
        """
        session = cls.__new__(cls)
        session._setup(response, connect, options)
        return session

    def _setup(
        self,
        response: ResponseLike | None,
        connect: ConnectCallable | None,
        options: SessionOptions,
    ) -> None:
        if response is None and connect is None:
            raise TypeError("Session needs a ConnectResponse or a connect= callable")
        if connect is not None and not callable(connect):
            raise TypeError("connect: expected an async callable returning a ConnectResponse")
        self._options = options
        connection = Connection(self, options, self._on_lost)
        super().__init__(
            connection,
            options.namespace,
            auth=options.auth,
            max_queue=options.max_queue,
            max_backlog=options.max_backlog,
            call_timeout=options.call_timeout,
            stream_maxsize=options.stream_maxsize,
            root=True,
        )
        self._init_watch(coerce_response(response) if response is not None else None, connect)
        self._state = State.IDLE
        self._backoff = Backoff(*options.reconnect_delay)
        self._reconnector: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._tickers: set[Ticker] = set()

    # ------------------------------------------------------------------ state

    @property
    def options(self) -> SessionOptions:
        """The options this Session was made with."""
        return self._options

    @property
    def state(self) -> State:
        """Where the Session is in its life (see :mod:`jamsocket_rt.protocol.lifecycle`)."""
        return self._state

    @property
    def read_pauses(self) -> int:
        """How many times reading was paused because handlers or streams fell behind."""
        return self._connection.read_pauses

    @property
    def dropped_packets(self) -> int:
        """Packets received for namespaces nobody opened (dropped), on this connection."""
        return self._connection.dropped_packets

    def __repr__(self) -> str:
        status = self.status.status if self.status is not None else None
        url = redact_url(self._response.url) if self._response is not None else None
        return (
            f"<Session backend_id={self.backend_id!r} status={status!s} ready={self.ready} "
            f"connected={self.connected} url={url}>"
        )

    def namespace(self, name: str, auth: Mapping[str, Any] | None = None) -> Namespace:
        """Another Socket.IO namespace on this Session's connection (socket.io-client's
        multiplexing: one Engine.IO connection, a CONNECT of its own).

        Returns at once: sends queue until the server accepts the CONNECT (``await
        ns.wait_connected()`` or ``async with session.namespace(...) as ns:`` waits for it).
        The same name returns the same open Namespace; the Session's own name returns the
        Session.

        Raises:
            ValueError: ``name`` is not a namespace (``/`` and a name, no comma).
            BackendTerminated, SessionClosed: the session can no longer be used.
        """
        check_namespace(name)
        if name == self.name:
            return self
        existing = self._connection.namespaces.get(name)
        if existing is not None:
            return existing
        self._check_usable()
        options = self._options
        created = Namespace(
            self._connection,
            name,
            auth=auth,
            max_queue=options.max_queue,
            max_backlog=options.max_backlog,
            call_timeout=options.call_timeout,
            stream_maxsize=options.stream_maxsize,
        )
        created._loop = self._loop
        self._connection.add(created)
        return created

    def _namespaces(self) -> list[Namespace]:
        return [self, *self._connection.namespaces.values()]

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
        if self._state is not State.IDLE:
            raise RuntimeError("connect() was already called on this Session")
        self._loop = asyncio.get_running_loop()
        self._state_changed = asyncio.Event()
        try:
            await self._drive(Input.CONNECT)
            if self.state is not State.CONNECTED:
                self._check_usable()  # raises how it ended
                raise SessionClosed("the session was closed")
        except BaseException:
            await self.close()
            raise
        latency_probe = self._options.latency_probe
        if latency_probe is not None:
            self.every(self._options.latency_interval, self._probe_latency)

    async def _probe_latency(self) -> None:
        probe = self._options.latency_probe
        assert probe is not None
        if self.connected:
            try:
                await self.call(probe, timeout=self._options.latency_interval)
            except (JamsocketError, TimeoutError) as exc:  # the next probe will tell more
                logger.debug("latency probe failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Disconnect and release everything (tasks, connection, status watcher); idempotent.

        Waiting calls, ``wait_for`` and streams end with :class:`SessionClosed`.
        """
        if self._state is not State.CLOSED:
            await self._drive(Input.CLOSE)

    def _on_lost(self, error: BaseException | None) -> None:
        self._feed(Input.DROPPED, error)

    def _guards(self) -> Guards:
        tracker = self._tracker
        return Guards(
            reconnect=self._options.reconnect,
            terminated=tracker.terminal is not None,
            ending=tracker.ending,
            can_renew=self._connect_fn is not None,
        )

    def _feed(self, event: Input, error: BaseException | None = None) -> None:
        """Feeds ``event`` from a callback: what is immediate runs now, the rest in a task."""
        transition = next_step(self._state, event, self._guards())
        if transition is None:
            return
        self._state = transition.target
        actions = transition.actions
        for index, action in enumerate(actions):
            if action in _WAITS:
                self._reconnector = self._loop_or_raise().create_task(
                    self._carry_on(actions[index:], error), name="jamsocket_rt reconnect"
                )
                return
            self._perform(action, error)

    async def _drive(self, event: Input, error: BaseException | None = None) -> None:
        """Feeds ``event`` and performs what follows, step by step, until nothing does."""
        step: _Next = (event, error)
        while step is not None:
            transition = next_step(self._state, step[0], self._guards())
            if transition is None:
                return
            self._state = transition.target
            step = await self._perform_all(transition.actions, step[1])

    async def _carry_on(self, actions: Sequence[Action], error: BaseException | None) -> None:
        try:
            step = await self._perform_all(actions, error)
            if step is not None:
                await self._drive(*step)
        except (BackendTerminated, SessionClosed):
            pass  # the backend ended or the session closed meanwhile: nothing to recover
        finally:
            if self._reconnector is asyncio.current_task():
                self._reconnector = None

    async def _perform_all(self, actions: Sequence[Action], error: BaseException | None) -> _Next:
        step: _Next = None
        for action in actions:
            if action in _WAITS:
                step = await self._wait(action, error)
            else:
                self._perform(action, error)
        return step

    def _perform(self, action: Action, error: BaseException | None) -> None:
        """Performs an immediate action."""
        if action is Action.FLUSH:
            self._flush()
        elif action is Action.ANNOUNCE_RECONNECT:
            self._fire("reconnect")
        elif action is Action.SET_ASIDE_CALLS:
            for namespace in self._namespaces():
                namespace._set_aside()
        elif action is Action.ANNOUNCE_DISCONNECT:
            for namespace in self._namespaces():
                namespace._fire("disconnect", error)
        elif action is Action.FAIL_UNANSWERED:
            assert isinstance(error, JamsocketError)
            for namespace in self._namespaces():
                namespace._fail_unanswered(error)
        elif action is Action.RESET_BACKOFF:
            self._backoff.reset()
        elif action is Action.FAIL:
            assert isinstance(error, JamsocketError)
            self._fail_everywhere(error)
        elif action is Action.RAISE:
            assert error is not None
            raise error
        elif action is Action.END:
            self._end()
        else:  # pragma: no cover - every action of the table is handled
            raise AssertionError(f"unhandled action {action}")

    async def _wait(self, action: Action, error: BaseException | None) -> _Next:
        """Performs an action that waits; returns the input its outcome feeds back."""
        if action is Action.WAIT_READY:
            if self._response is None:
                self._response = await self._fetch_response()
            self._watch(self._response)
            await self._wait_ready()
            return Input.READY, None
        if action is Action.OPEN:
            return await self._open()
        if action is Action.WAIT_GRACE:
            # The disconnect reaches us a few milliseconds before the terminated status: wait
            # for it a moment, so that calls cut by a backend's end fail with
            # BackendTerminated, and a backend that is gone is not hammered with reconnects.
            await asyncio.sleep(self._options.disconnect_grace)
            lost = ConnectionLost(
                "the connection to the backend dropped while waiting for an acknowledgement"
                + (f" ({type(error).__name__})" if error is not None else "")
            )
            return Input.GRACE_OVER, lost
        if action is Action.WAIT_BACKOFF:
            delay = self._backoff.next_delay()
            name = type(error).__name__
            logger.debug("reconnect failed (%s); next try in %.2f s", name, delay)
            await asyncio.sleep(delay)
            return Input.BACKOFF_OVER, None
        if action is Action.PROBE_STATUS:
            return Input.STATUS_CHECKED, await self._probe_status(error)
        if action is Action.RENEW:
            return await self._renew_token()
        if action is Action.CLOSE:
            await self._release()
            return None
        raise AssertionError(f"unhandled action {action}")  # pragma: no cover

    async def _open(self) -> _Next:
        assert self._response is not None
        try:
            transport = await self._connection.open(self._response)
        except TokenExpired as exc:
            return Input.GONE, exc
        except ConnectRefused as exc:
            return Input.REFUSED, exc
        except (OSError, TimeoutError) as exc:
            return Input.UNREACHABLE, exc
        if self._state is not State.CONNECTING and self._state is not State.RECONNECTING:
            self._connection.detach()  # closed, or the backend ended, while opening
            await transport.close()
            self._check_usable()
            raise SessionClosed("the session was closed")
        self._connection.attach(transport)
        return Input.OPENED, None

    async def _probe_status(self, error: BaseException | None) -> BaseException | None:
        """After a 410: does the status say the backend ended or is ending?"""
        # A 410 says "unknown, expired or ended": if the backend has ended, the status says so
        # (perhaps before the stream does); that is the better answer.
        if self._tracker.terminal is None and self._subscription is not None:
            await self._subscription.probe()
            if self._tracker.ending:
                await self._await_end()
        if self._tracker.terminal is not None:
            return BackendTerminated(self._tracker.terminal)
        if self._tracker.ending:
            return BackendTerminated(
                self._tracker.latest,
                "the session backend is terminating: the proxy no longer accepts it",
            )
        return error

    async def _renew_token(self) -> _Next:
        if self._state is State.CONNECTING:
            await self._renew()  # the first connection: what goes wrong is raised
            return Input.RENEWED, None
        try:
            await self._renew()
        except (TokenExpired, ConnectRefused) as exc:
            return Input.REFUSED, exc
        except (OSError, TimeoutError) as exc:
            return Input.UNREACHABLE, exc
        return Input.RENEWED, None

    def _fail_everywhere(self, error: JamsocketError) -> None:
        for namespace in self._namespaces():
            namespace._failure = error
            namespace._fail_all(error)

    def _end(self) -> None:
        """The backend ended: tell the hooks, fail what waits, drop the connection."""
        terminal = self._tracker.terminal
        assert terminal is not None
        self._fire("terminated", terminal)
        self._fail_everywhere(BackendTerminated(terminal))
        if self._reconnector is not None and self._reconnector is not asyncio.current_task():
            self._reconnector.cancel()
        transport = self._connection.detach()
        if transport is not None:
            self._spawn(transport.close())
        for ticker in list(self._tickers):
            ticker.cancel()

    async def _release(self) -> None:
        """Closes everything: waiting calls end with SessionClosed, tasks stop."""
        closed = SessionClosed("the session was closed")
        namespaces = self._namespaces()
        for namespace in namespaces:
            namespace._closed = True
            namespace._fail_all(closed)
        tasks = [self._reconnector, *(n._dispatcher for n in namespaces)]
        tasks += [*self._background, *(t._task for t in self._tickers)]
        current = asyncio.current_task()
        live = [task for task in tasks if task is not None and task is not current]
        for task in live:
            task.cancel()
        transport = self._connection.detach()
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.close()
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.aclose()
        for task in live:
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        ticker._task = loop.create_task(
            run_ticker(ticker, schedule, fn, on_overrun, self._report_error)
        )
        self._tickers.add(ticker)
        ticker._task.add_done_callback(lambda _: self._tickers.discard(ticker))
        return ticker

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
