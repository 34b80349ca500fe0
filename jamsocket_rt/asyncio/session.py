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
import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import _display
from .._errors import (
    JamsocketError,
    SessionClosed,
)
from .._models import redact_url
from ..protocol.lifecycle import Input, State
from ..protocol.options import Auth, ParserName, SessionOptions, TransportName
from ..protocol.proxy import ProxySetting
from ..protocol.session import LatencyEstimate, TickSchedule
from ..protocol.socketio import check_namespace
from ._backend import ENDING_WAIT, ConnectCallable, ResponseLike, coerce_response
from ._handlers import ANY_EVENT
from ._lifecycle import SessionCore
from ._util import Flag
from .connection import TransportFactory
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


class Session(SessionCore):
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

    Every other keyword argument is an option, documented on
    :class:`~jamsocket_rt.SessionOptions` (``ready_timeout``, ``call_timeout``, ``auth``,
    ``proxy``, ``reconnect``...). The options are validated once into a
    :class:`SessionOptions`; :meth:`from_options` takes one directly.

    Raises:
        InvalidResponse: ``response`` does not fit.
        ValueError: an option is out of range (the message names it).
        TypeError: an unknown option.
    """

    __slots__ = ()

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
        auth: Auth = None,
        query: Mapping[str, str] | None = None,
        parser: ParserName = "json",
        ssl: ssl_module.SSLContext | bool | None = None,
        proxy: ProxySetting = None,
        max_queue: int = 10_000,
        reconnect: bool = True,
        reconnect_delay: tuple[float, float] = (0.1, 10.0),
        reconnect_attempts: int | None = None,
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
            query=query,
            parser=parser,
            ssl=ssl,
            proxy=proxy,
            max_queue=max_queue,
            reconnect=reconnect,
            reconnect_delay=reconnect_delay,
            reconnect_attempts=reconnect_attempts,
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

    def namespace(self, name: str, auth: Auth = None) -> Namespace:
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

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Session:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Wait until the backend is ready, then open the Socket.IO connection.

        After the server disconnected the session (``state`` is ``KICKED``, the reason
        ``"io server disconnect"``), it opens the connection again as a reconnect does:
        unreachable servers are retried with backoff (``reconnect_attempts``), queued sends are
        flushed and ``on_reconnect`` callbacks run.

        Raises:
            BackendTerminated: the backend terminated before it was ready.
            ReadyTimeout: it was not ready within ``ready_timeout``.
            TokenExpired: the proxy refused the token and there is no ``connect`` callable.
            ConnectionError: the connection could not be opened.
            TimeoutError: the handshake took longer than ``connect_timeout``.
            ReconnectFailed: after a server's disconnect, ``reconnect_attempts`` failed.
            RuntimeError: connect() was already called, and the server did not disconnect.
        """
        if self._state is State.KICKED:
            await self._reconnect()
            return
        if self._state is not State.IDLE:
            raise RuntimeError("connect() was already called on this Session")
        self._loop = asyncio.get_running_loop()
        self._state_changed = Flag()
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
        if self._tickers is None:
            self._tickers = set()
        tickers = self._tickers
        tickers.add(ticker)
        ticker._task.add_done_callback(lambda _: tickers.discard(ticker))
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
