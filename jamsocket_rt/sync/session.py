"""The blocking SyncSession, for scripts, worker threads and notebooks.

It drives an asyncio :class:`~jamsocket_rt.Session` on a background event loop thread shared by
every SyncSession of the process (started with the first, stopped with the last), so it works
in a plain script, in any thread, and inside a running event loop such as a Jupyter kernel.

Handlers and callbacks (``on``, ``on_status``...) run on that background thread, one at a time;
keep them short, or hand work to your own thread. Blocking SyncSession methods must not be
called from a handler (it would wait for itself): they raise RuntimeError there.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

from .._errors import ConfigurationError
from .._models import BackendState, ConnectResponse
from ..asyncio._backend import ConnectCallable
from ..asyncio._calls import _Default
from ..asyncio._served import blocked_origin
from ..asyncio.connection import TransportFactory
from ..asyncio.namespace import Namespace
from ..asyncio.session import EventStream, ResponseLike, Session, Ticker
from ..protocol.lifecycle import State
from ..protocol.options import Auth, Overflow, ParserName, SessionOptions, TransportName
from ..protocol.proxy import ProxySetting
from ..protocol.session import LatencyEstimate
from ._loop import _LoopThread as _LoopThread  # (re-exported: where it used to live)
from ._loop import run_on_loop

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


#: ``connect=`` of a SyncSession: an async callable, or a plain one (e.g. ``SyncJamsocket.connect``
#: with its arguments bound), returning a ConnectResponse.
SyncConnectCallable = Callable[[], "ConnectResponse | Awaitable[ConnectResponse]"]


def _in_a_thread(connect: SyncConnectCallable | None) -> ConnectCallable | None:
    """``connect`` as the async callable the Session awaits: a plain one runs in a worker
    thread, so that it may block (even on this module's own loop thread, as SyncJamsocket
    does) without stopping the loop."""
    if connect is None or inspect.iscoroutinefunction(connect):
        return connect  # (an async callable, as it is)

    async def fetch() -> ConnectResponse:
        result = await asyncio.to_thread(connect)
        if inspect.isawaitable(result):
            return await result
        return result

    return fetch


class SyncNamespace:
    """The blocking twin of :class:`~jamsocket_rt.Namespace` (see ``SyncSession.namespace``).

    Handlers and callbacks run on the background loop thread, one at a time.
    """

    def __init__(self, namespace: Namespace, owner: SyncSession) -> None:
        self._namespace = namespace
        self._owner = owner

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        return self._owner._run(make, timeout)

    @property
    def name(self) -> str:
        """The namespace, e.g. ``"/admin"``."""
        return self._namespace.name

    @property
    def connected(self) -> bool:
        return self._namespace.connected

    @property
    def sid(self) -> str | None:
        return self._namespace.sid

    @property
    def recovered(self) -> bool:
        """See :attr:`Namespace.recovered`."""
        return self._namespace.recovered

    def __repr__(self) -> str:
        return "<Sync" + repr(self._namespace)[1:]

    # ------------------------------------------------------------------ sending

    def send(self, event: str, *args: Any, volatile: bool = False) -> None:
        """See :meth:`Session.send`."""
        self._run(lambda: self._namespace.send(event, *args, volatile=volatile))

    @property
    def dropped_volatile(self) -> int:
        """Volatile sends dropped because they could not be written at once."""
        return self._namespace.dropped_volatile

    def call(
        self,
        event: str,
        *args: Any,
        timeout: float | _Default | None = _Default.DEFAULT,
        retry: bool = False,
        type: Any = None,
    ) -> Any:
        """See :meth:`Session.call`."""
        return self._run(
            lambda: self._namespace.call(event, *args, timeout=timeout, retry=retry, type=type)
        )

    def wait_for(self, event: str, timeout: float | None = None, *, type: Any = None) -> Any:
        """See :meth:`Session.wait_for`."""
        return self._run(lambda: self._namespace.wait_for(event, timeout=timeout, type=type))

    def stream(
        self,
        event: str,
        *,
        maxsize: int | None = None,
        overflow: Overflow = "error",
        type: Any = None,
    ) -> Iterator[Any]:
        """Every occurrence of ``event`` from now on, blocking between them (see Session.stream).

        Registration happens at once, so nothing sent after this call is missed.
        """
        events = self._namespace.stream(event, maxsize=maxsize, overflow=overflow, type=type)
        return self._iterate(events)

    def _iterate(self, events: EventStream) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._run(events.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            loop = self._owner._loop
            if loop is not None:
                asyncio.run_coroutine_threadsafe(events.aclose(), loop)

    # ------------------------------------------------------------------ listeners

    @overload
    def on(self, event: str, handler: None = None, *, type: Any = None) -> Callable[[F], F]: ...

    @overload
    def on(
        self, event: str, handler: Callable[..., Any], *, type: Any = None
    ) -> Callable[[], None]: ...

    def on(
        self, event: str, handler: Callable[..., Any] | None = None, *, type: Any = None
    ) -> Callable[[], None] | Callable[[F], F]:
        """See :meth:`Session.on`; handlers run on the background loop thread."""
        return self._namespace.on(event, handler, type=type)

    def off(self, event: str, handler: Callable[..., Any]) -> bool:
        return self._namespace.off(event, handler)

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        """See :meth:`Session.listeners`."""
        return self._namespace.listeners(event)

    def on_any_outgoing(self, callback: Callable[..., Any]) -> Callable[[], None]:
        """See :meth:`Session.on_any_outgoing`; the callback runs on the background loop
        thread."""
        return self._namespace.on_any_outgoing(callback)

    def on_disconnect(self, callback: Callable[[BaseException | None], Any]) -> Callable[[], None]:
        return self._namespace.on_disconnect(callback)

    def on_reconnect(self, callback: Callable[[], Any]) -> Callable[[], None]:
        return self._namespace.on_reconnect(callback)

    def on_error(self, callback: Callable[[BaseException], Any]) -> Callable[[], None]:
        return self._namespace.on_error(callback)

    @property
    def latency(self) -> LatencyEstimate:
        """See :attr:`Session.latency`."""
        return self._namespace.latency

    # ------------------------------------------------------------------ an extra namespace

    def wait_connected(self, timeout: float | None = None) -> None:
        """See :meth:`Namespace.wait_connected`."""
        self._run(lambda: self._namespace.wait_connected(timeout))

    def close(self) -> None:
        """Leave this namespace; the Session's connection stays open."""
        self._run(self._namespace.close)

    def __enter__(self) -> SyncNamespace:
        self.wait_connected()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncSession(SyncNamespace):
    """The blocking twin of :class:`~jamsocket_rt.Session`: same arguments, same methods.

    ::

        with SyncSession(response) as s:
            s.on("pong", print)
            s.send("ping", 1)
            print(s.call("echo", "hello", timeout=5))

    Every method raises what the async Session's raises, in the calling thread.
    """

    def __init__(
        self,
        response: ResponseLike | None = None,
        *,
        connect: SyncConnectCallable | None = None,
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
        # The signature is Session's (so that mypy checks every option); the options
        # themselves are this call's keyword arguments, validated once by SessionOptions.
        options = {
            name: value
            for name, value in locals().items()
            if name not in ("self", "response", "connect")
        }
        session = Session.from_options(
            response, connect=_in_a_thread(connect), options=SessionOptions(**options)
        )
        self._wrap(session)

    @classmethod
    def from_options(
        cls,
        response: ResponseLike | None = None,
        *,
        connect: SyncConnectCallable | None = None,
        options: SessionOptions,
    ) -> SyncSession:
        """A SyncSession with options validated beforehand (see ``Session.from_options``)."""
        sync = cls.__new__(cls)
        sync._wrap(Session.from_options(response, connect=_in_a_thread(connect), options=options))
        return sync

    def _wrap(self, session: Session) -> None:
        super().__init__(session, self)
        self._session = session
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ plumbing

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        if self._loop is None and not _LoopThread.is_current():
            raise RuntimeError("the SyncSession is not connected (call connect() first)")
        return run_on_loop(self._loop, make, timeout, "SyncSession")

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SyncSession:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Wait until the backend is ready and open the connection (see Session.connect);
        again after the server disconnected the session."""
        if self._loop is not None and self._session.state is State.KICKED:
            self._run(self._session.connect)
            return
        if self._loop is not None:
            raise RuntimeError("connect() was already called on this SyncSession")
        self._refuse_a_blocked_server()
        self._loop = _LoopThread.acquire()
        try:
            self._run(self._session.connect)
        except BaseException:
            self._release()
            raise

    def _refuse_a_blocked_server(self) -> None:
        """Raises if this thread's own event loop serves the backend (a notebook kernel's
        DevServer): blocking here would stop that server from ever answering."""
        response = self._session.response
        if response is None:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        origin = blocked_origin([response.status_url, response.url, response.ready_url], loop)
        if origin is not None:
            raise ConfigurationError(
                f"the backend's server ({origin}) runs on this thread's event loop, which a "
                "SyncSession blocks while it waits: it could never answer. Serve it with "
                "jamsocket_rt.dev.BackgroundDevServer (its own thread), or use the async "
                "Session with await here"
            )

    def close(self) -> None:
        """Disconnect and stop everything; leaves no thread, task or connection behind."""
        if self._loop is None:
            return
        try:
            self._run(self._session.close)
        finally:
            self._release()

    def _release(self) -> None:
        if self._loop is not None:
            self._loop = None
            _LoopThread.release()

    def namespace(self, name: str, auth: Auth = None) -> SyncNamespace:
        """Another namespace on this session's connection (see ``Session.namespace``)."""
        if name == self._session.name:
            return self
        if self._loop is None:  # not connected: it joins on connect, from the loop thread
            return SyncNamespace(self._session.namespace(name, auth), self)

        async def on_the_loop() -> Namespace:  # connected: it joins now, on the loop thread
            return self._session.namespace(name, auth)

        return SyncNamespace(self._run(on_the_loop), self)

    # ------------------------------------------------------------------ state

    @property
    def session(self) -> Session:
        """The underlying asyncio Session (use it only on its loop thread)."""
        return self._session

    @property
    def response(self) -> ConnectResponse | None:
        return self._session.response

    @property
    def backend_id(self) -> str | None:
        return self._session.backend_id

    @property
    def status(self) -> BackendState | None:
        return self._session.status

    @property
    def ready(self) -> bool:
        return self._session.ready

    @property
    def terminated(self) -> BackendState | None:
        return self._session.terminated

    def __repr__(self) -> str:
        return "<Sync" + repr(self._session)[1:]

    def wait_ready(self, timeout: float | None = None) -> None:
        """See :meth:`Session.wait_ready`."""
        self._run(lambda: self._session.wait_ready(timeout))

    def every(
        self,
        interval: float,
        fn: Callable[[], Any],
        *,
        on_overrun: Callable[[int], Any] | None = None,
    ) -> Ticker:
        """See :meth:`Session.every`; ``fn`` runs on the background loop thread."""

        async def start() -> Ticker:
            return self._session.every(interval, fn, on_overrun=on_overrun)

        return self._run(start)

    def display(self) -> Any:
        """See :meth:`Session.display`."""
        return self._session.display()

    def _repr_html_(self) -> str:
        return self._session._repr_html_()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        self._session._repr_pretty_(printer, cycle)

    def on_ready(self, callback: Callable[[], Any]) -> Callable[[], None]:
        return self._session.on_ready(callback)

    def on_status(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        return self._session.on_status(callback)

    def on_terminated(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        return self._session.on_terminated(callback)
