"""Locust users that talk to session backends, for load past one machine.

::

    from locust import task
    from jamsocket_rt.locust import SessionUser, spread_pacing

    class Player(SessionUser):
        wait_time = spread_pacing(1.0)     # one task a second per user, users spread evenly

        @task
        def echo(self) -> None:
            self.session.call("echo", "x" * 64)

Run it like any locustfile (``locust -f examples/locustfile.py --host http://127.0.0.1:8080``
against a dev server; without ``--host``, the ``JAMSOCKET_*`` variables pick the platform), on
one machine or in Locust's distributed mode across many (``--master`` / ``--worker``).

On start, each user asks the platform for a backend (:meth:`SessionUser.connect_response`),
waits until it is ready and opens its Socket.IO session. Locust's statistics get:

==============  ==================  =========================================================
request type    name                what
==============  ==================  =========================================================
``session``     ``connect_api``     the platform API's connect call
``session``     ``ready``           from the connect answer until the backend is ready
``session``     ``socket_connect``  the Socket.IO handshake
``call``        the event (or       a call's round trip until its acknowledgement
                ``name=``)
``send``        the event           handing a fire-and-forget event to the connection
``wait``        the event           from :meth:`GeventSession.expect` until the event came
==============  ==================  =========================================================

Every failure is reported under the same type and name, with its exception.

Under gevent, every user's Session lives on one asyncio loop per process, in a real OS thread;
greenlets hand work to it and wait on gevent results (``docs/architecture.md`` says how and why).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

import gevent
import gevent.event
import gevent.monkey
from locust import User
from locust.exception import StopUser

from ._models import ConnectResponse
from .asyncio.session import Session
from .load.pacing import spread_pacing
from .platform import Jamsocket
from .protocol.options import SessionOptions

__all__ = ["GeventSession", "Pending", "SessionUser", "spread_pacing"]

T = TypeVar("T")

_clock = time.perf_counter
_start_real_thread = gevent.monkey.get_original("_thread", "start_new_thread")
_RealSelector = gevent.monkey.get_original("selectors", "DefaultSelector")
_real_getaddrinfo = gevent.monkey.get_original("socket", "getaddrinfo")

#: The golden ratio's fractional part: offsets the phases of one worker from the next.


# -- the loop thread --------------------------------------------------------------------------


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _Loop(asyncio.SelectorEventLoop):
    """An event loop that never relies on a patched thread.

    asyncio's default executor starts ``threading`` threads, which gevent turns into greenlets
    of a hub that never runs in this thread: DNS lookups (and aiohttp's SSL context set-up)
    would wait forever. Each executor job gets a real thread instead (they are rare: aiohttp
    caches DNS answers), and the lookup uses the unpatched ``getaddrinfo``.
    """

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., T], *args: Any
    ) -> Any:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[T] = self.create_future()

        def work() -> None:
            try:
                result = func(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                self.call_soon_threadsafe(_settle, future, False, exc)
            else:
                self.call_soon_threadsafe(_settle, future, True, result)

        _start_real_thread(work, ())
        return future

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Any:
        return await self.run_in_executor(
            None, _real_getaddrinfo, host, port, family, type, proto, flags
        )


class _Bridge:
    """The process's asyncio loop thread, and the two queues between it and the gevent hub."""

    _instance: ClassVar[_Bridge | None] = None
    _pid: ClassVar[int] = 0

    def __init__(self) -> None:
        self.loop = _Loop(_RealSelector())
        self._inbox: collections.deque[tuple[Callable[[], Awaitable[Any]], Any, float]] = (
            collections.deque()
        )
        self._outbox: collections.deque[tuple[Any, bool, Any, float]] = collections.deque()
        self._drain_scheduled = False
        # ref=False: a pending watcher must not keep the hub's loop alive at exit.
        self._wake_hub = gevent.get_hub().loop.async_(ref=False)
        self._wake_hub.start(self._deliver)
        # Work submitted before run_forever() starts simply waits in the loop's queue.
        _start_real_thread(self._run, ())

    @classmethod
    def get(cls) -> _Bridge:
        # A forked process (Locust's --processes) needs its own thread and watcher.
        if cls._instance is None or cls._pid != os.getpid():
            cls._instance = cls()
            cls._pid = os.getpid()
        return cls._instance

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- greenlet side ----------------------------------------------------------------------

    def submit(self, make: Callable[[], Awaitable[T]]) -> tuple[gevent.event.AsyncResult, float]:
        """Starts ``make()`` on the loop; returns its result holder and the start time."""
        result = gevent.event.AsyncResult()
        started = _clock()
        self._inbox.append((make, result, started))
        # Cleared by the drain before it reads the queue: an item is never left behind.
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon_threadsafe(self._drain_inbox)
        return result, started

    def run(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Runs ``make()`` on the loop and waits for it, blocking only this greenlet."""
        result, _ = self.submit(make)
        value: T = _wait(result, timeout)[0]
        return value

    def _deliver(self) -> None:
        """In the hub: hands every finished result to its greenlet."""
        outbox = self._outbox
        while outbox:
            result, ok, value, finished = outbox.popleft()
            if ok:
                result.set((value, finished))
            else:
                result.set_exception(value)

    # -- loop side --------------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        self._drain_scheduled = False
        inbox = self._inbox
        loop = self.loop
        while inbox:
            make, result, _ = inbox.popleft()
            try:
                awaitable = make()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting greenlet
                self._finish(result, False, exc)
                continue
            task = asyncio.ensure_future(awaitable, loop=loop)
            task.add_done_callback(functools.partial(self._task_done, result))

    def _task_done(self, result: Any, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self._finish(result, False, asyncio.CancelledError())
        elif task.exception() is not None:
            self._finish(result, False, task.exception())
        else:
            self._finish(result, True, task.result())

    def _finish(self, result: Any, ok: bool, value: Any) -> None:
        self._outbox.append((result, ok, value, _clock()))
        self._wake_hub.send()


def _wait(result: gevent.event.AsyncResult, timeout: float | None = None) -> tuple[Any, float]:
    value: tuple[Any, float] = result.get(timeout=timeout)
    return value


# -- the greenlet-side session ----------------------------------------------------------------


class Pending:
    """An event awaited since :meth:`GeventSession.expect`; :meth:`get` blocks for it."""

    def __init__(self, session: GeventSession, event: str, name: str, result: Any, started: float):
        self._session = session
        self.event = event
        self._name = name
        self._result = result
        self._started = started

    def get(self) -> Any:
        """The event's payload, once it arrives (reported as a ``wait``).

        Raises:
            TimeoutError: the ``expect`` timeout elapsed first.
            BackendTerminated: the backend terminated first.
        """
        try:
            payload, arrived = _wait(self._result)
        except Exception as exc:
            self._session._report("wait", self._name, _clock() - self._started, exc)
            raise
        self._session._report("wait", self._name, arrived - self._started)
        return payload


class GeventSession:
    """A Session driven from greenlets: blocking calls that block only the calling greenlet.

    Every method reports to Locust's statistics (see the module docstring). The underlying
    asyncio :class:`~jamsocket_rt.Session` is :attr:`session`; touch it only from coroutines
    run with :meth:`run`.
    """

    def __init__(self, session: Session, fire: Callable[..., None]) -> None:
        self.session = session
        self._fire = fire
        self._bridge = _Bridge.get()

    def _report(
        self, kind: str, name: str, seconds: float, error: BaseException | None = None
    ) -> None:
        self._fire(
            request_type=kind,
            name=name,
            response_time=seconds * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Runs ``make()`` (a coroutine function) on the session's event loop; not reported."""
        return self._bridge.run(make)

    def call(
        self, event: str, *args: Any, timeout: float | None = None, name: str | None = None
    ) -> Any:
        """:meth:`Session.call`, reported as ``call`` / ``name`` (default: the event)."""
        session = self.session
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        result, started = self._bridge.submit(lambda: session.call(event, *args, **options))
        try:
            value, finished = _wait(result)
        except Exception as exc:
            self._report("call", name or event, _clock() - started, exc)
            raise
        self._report("call", name or event, finished - started)
        return value

    def send(self, event: str, *args: Any, name: str | None = None) -> None:
        """:meth:`Session.send`, reported as ``send`` / ``name`` (default: the event)."""
        session = self.session
        result, started = self._bridge.submit(lambda: session.send(event, *args))
        try:
            _, finished = _wait(result)
        except Exception as exc:
            self._report("send", name or event, _clock() - started, exc)
            raise
        self._report("send", name or event, finished - started)

    def expect(self, event: str, timeout: float | None = 10.0, name: str | None = None) -> Pending:
        """Starts listening for the next ``event`` now; ``.get()`` on the result waits for it.

        ::

            pong = self.session.expect("pong")
            self.session.send("ping", 1)
            pong.get()
        """
        session = self.session
        result, started = self._bridge.submit(lambda: session.wait_for(event, timeout=timeout))
        return Pending(self, event, name or event, result, started)

    def close(self) -> None:
        """Closes the session (not reported)."""
        session = self.session
        self._bridge.run(session.close)


# -- the user ---------------------------------------------------------------------------------


class SessionUser(User):
    """A Locust user with a live session with one session backend (``self.session``).

    Configure by class attributes (or override :meth:`connect_response`):

    Attributes:
        keys: ``"shared"`` (every user on one backend, key ``key_prefix``), ``"new"`` (a backend
            per user) or a number K of keys ``key_prefix-0`` ... used round-robin.
        key_prefix: the keys' prefix.
        session_options: a :class:`~jamsocket_rt.SessionOptions`, or a mapping of its keyword
            arguments (validated once per user class, when the first user starts).
        host: Locust's ``--host``: the API URL of a dev server (``jamsocket-rt dev``); when
            empty, :meth:`platform` reads the ``JAMSOCKET_*`` variables.
    """

    abstract = True
    keys: ClassVar[str | int] = "shared"
    key_prefix: ClassVar[str] = "locust"
    session_options: ClassVar[SessionOptions | Mapping[str, Any]] = {}
    _validated_options: ClassVar[SessionOptions | None] = None

    _numbers: ClassVar[itertools.count[int]] = itertools.count()
    _platform: ClassVar[Any] = None
    _platform_pid: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: This user's number in its process, from 0.
        self.number = next(SessionUser._numbers)
        self._bridge = _Bridge.get()
        self._fire = self.environment.events.request.fire
        self._session: GeventSession | None = None

    @classmethod
    def _options(cls) -> SessionOptions:
        """``session_options`` as a SessionOptions, built once per user class."""
        cached = cls.__dict__.get("_validated_options")
        if cached is None:
            given = cls.session_options
            cached = given if isinstance(given, SessionOptions) else SessionOptions(**given)
            cls._validated_options = cached
        return cached

    @property
    def session(self) -> GeventSession:
        """The user's session, open from ``on_start`` until ``on_stop``.

        Raises:
            RuntimeError: the session is not open (``on_start`` failed or has not run).
        """
        if self._session is None:
            raise RuntimeError("the session is not open: did on_start fail?")
        return self._session

    def key(self) -> str | None:
        """The connect key of this user (None: a new backend)."""
        if self.keys == "new":
            return None
        if self.keys == "shared":
            return self.key_prefix
        return f"{self.key_prefix}-{self.number % int(self.keys)}"

    @classmethod
    def platform(cls, host: str | None) -> Any:
        """The platform client shared by the process's users, created on the loop thread.

        ``host`` (Locust's ``--host``) is a dev server's API URL; without it the ``JAMSOCKET_*``
        variables decide (:meth:`Jamsocket.from_env`). Override for Plane or other settings;
        it is called on the event loop thread.
        """
        if host:
            return Jamsocket.dev_server(host.rstrip("/"))
        return Jamsocket.from_env()

    async def connect_response(self) -> ConnectResponse:
        """Asks the platform for this user's backend (runs on the loop thread)."""
        cls = type(self)
        if cls._platform is None or cls._platform_pid != os.getpid():
            cls._platform = self.platform(self.host)
            cls._platform_pid = os.getpid()
        key = self.key()
        response: ConnectResponse = await (
            cls._platform.connect(key=key) if key is not None else cls._platform.connect()
        )
        return response

    def _report(self, name: str, seconds: float, error: BaseException | None = None) -> None:
        self._fire(
            request_type="session",
            name=name,
            response_time=seconds * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def on_start(self) -> None:
        """Connects: platform API, wait until ready, Socket.IO handshake; each one reported.

        Raises:
            StopUser: a step failed (it was reported as a failure of that step).
        """
        bridge = self._bridge
        result, started = bridge.submit(self.connect_response)
        try:
            response, answered = _wait(result)
        except Exception as exc:
            self._report("connect_api", _clock() - started, exc)
            raise StopUser from exc  # reported above: no second report as a user error
        self._report("connect_api", answered - started)

        ready_at: list[float] = []

        async def open_session() -> Session:
            session = Session.from_options(response, options=self._options())
            session.on_ready(lambda: ready_at.append(_clock()))
            await session.connect()
            return session

        result, _ = bridge.submit(open_session)
        try:
            session, connected = _wait(result)
        except Exception as exc:
            self._report("socket_connect" if ready_at else "ready", _clock() - answered, exc)
            raise StopUser from exc
        ready = ready_at[0] if ready_at else connected
        self._report("ready", ready - answered)
        self._report("socket_connect", connected - ready)
        self._session = GeventSession(session, self._fire)

    def on_stop(self) -> None:
        """Closes the session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
