"""The Session's core: its state, and the performing of what the lifecycle table decides.

:class:`SessionCore` is a Namespace (the Session's own) and a BackendWatch (its backend's
status). It feeds each thing that happens to :func:`~jamsocket_rt.protocol.lifecycle.next_step`
and performs the actions it gets back: immediate ones at once, the ones that wait (opening a
connection, the grace after a drop, the backoff, a token renewal) in order, in the connect()
call or in a reconnect task. The public surface is :class:`~jamsocket_rt.Session`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from .._errors import (
    BackendTerminated,
    ConfigurationError,
    ConnectionLost,
    ConnectRefused,
    Disconnected,
    JamsocketError,
    ReconnectFailed,
    SessionClosed,
    TokenExpired,
)
from ..protocol.lifecycle import Action, Guards, Input, State, next_step
from ..protocol.options import SessionOptions
from ..protocol.session import Backoff
from ._backend import BackendWatch, ConnectCallable, Next, ResponseLike, coerce_response
from .connection import Connection
from .namespace import Namespace
from .ticker import Ticker

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


class SessionCore(Namespace, BackendWatch):
    """What every Session is made of; see :class:`~jamsocket_rt.Session`."""

    # BackendWatch's attributes too: a second base cannot have slots of its own.
    __slots__ = (
        "_background",
        "_backoff",
        "_connect_fn",
        "_failed_attempts",
        "_options",
        "_reconnector",
        "_response",
        "_state",
        "_state_changed",
        "_status_error",
        "_subscription",
        "_tickers",
        "_tracker",
    )

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
        self._failed_attempts = 0  # reconnect attempts that failed in a row
        self._reconnector: asyncio.Task[None] | None = None
        # Closing transports, tickers: None until the first (most sessions have neither).
        self._background: set[asyncio.Task[Any]] | None = None
        self._tickers: set[Ticker] | None = None

    def _namespaces(self) -> list[Namespace]:
        return [self, *self._connection.namespaces.values()]

    def _on_lost(self, error: BaseException | None) -> None:
        lost = Disconnected.of(error)
        self._feed(Input.KICKED if lost.reason == "io server disconnect" else Input.DROPPED, lost)

    def _guards(self) -> Guards:
        tracker = self._tracker
        limit = self._options.reconnect_attempts
        return Guards(
            reconnect=self._options.reconnect,
            terminated=tracker.terminal is not None,
            ending=tracker.ending,
            can_renew=self._connect_fn is not None,
            attempts_left=limit is None or self._failed_attempts < limit,
        )

    def _feed(self, event: Input, error: BaseException | None = None) -> None:
        """Feeds ``event`` from a callback: what is immediate runs now, the rest in a task."""
        transition = next_step(self._state, event, self._guards)
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

    async def _drive(
        self,
        event: Input | None,
        error: BaseException | None = None,
        actions: Sequence[Action] | None = None,
    ) -> None:
        """Feeds ``event`` (or performs ``actions`` first) and what follows, until nothing does.

        One coroutine does it all, awaiting each waiting action's own coroutine directly: a
        thousand sessions connecting at once hold no deeper chain of frames than needed.
        """
        while True:
            if actions is None:
                assert event is not None
                if event is Input.UNREACHABLE and self._state is State.RECONNECTING:
                    self._failed_attempts += 1  # before the guard of reconnect_attempts
                transition = next_step(self._state, event, self._guards)
                if transition is None:
                    return
                self._state = transition.target
                actions = transition.actions
            step: Next = None
            for action in actions:
                if action in _WAITS:
                    step = await self._wait(action, error)
                else:
                    self._perform(action, error)
            if step is None:
                return
            (event, error), actions = step, None

    async def _carry_on(self, actions: Sequence[Action], error: BaseException | None) -> None:
        try:
            await self._drive(None, error, actions)
        except (BackendTerminated, SessionClosed):
            pass  # the backend ended or the session closed meanwhile: nothing to recover
        finally:
            if self._reconnector is asyncio.current_task():
                self._reconnector = None

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
            self._failed_attempts = 0
        elif action is Action.FAIL:
            assert isinstance(error, JamsocketError)
            self._fail_everywhere(error)
        elif action is Action.REPORT:
            assert error is not None
            self._fire("error", error)
        elif action is Action.GIVE_UP:
            assert error is not None
            gave_up = ReconnectFailed(self._failed_attempts, error)
            logger.info("%s", gave_up)
            self._fail_everywhere(gave_up)
            self._fire("error", gave_up)
        elif action is Action.RAISE:
            assert error is not None
            raise error
        elif action is Action.END:
            self._end()
        else:  # pragma: no cover - every action of the table is handled
            raise AssertionError(f"unhandled action {action}")

    def _wait(self, action: Action, error: BaseException | None) -> Awaitable[Next]:
        """The coroutine of an action that waits; it returns the input its outcome feeds back."""
        if action is Action.OPEN:
            return self._open()
        if action is Action.WAIT_READY:
            return self._get_ready()
        if action is Action.WAIT_GRACE:
            return self._grace(error)
        if action is Action.WAIT_BACKOFF:
            return self._back_off(error)
        if action is Action.PROBE_STATUS:
            return self._probe_status(error)
        if action is Action.RENEW:
            return self._renew_token()
        if action is Action.CLOSE:
            return self._release()
        raise AssertionError(f"unhandled action {action}")  # pragma: no cover

    async def _get_ready(self) -> Next:
        if self._response is None:
            self._response = await self._fetch_response()
        self._watch(self._response)
        await self._wait_ready()
        return Input.READY, None

    async def _grace(self, error: BaseException | None) -> Next:
        # The disconnect reaches us a few milliseconds before the terminated status: wait for
        # it a moment, so that calls cut by a backend's end fail with BackendTerminated, and a
        # backend that is gone is not hammered with reconnects.
        await asyncio.sleep(self._options.disconnect_grace)
        why = error.reason if isinstance(error, Disconnected) else None
        lost = ConnectionLost(
            "the connection to the backend dropped while waiting for an acknowledgement"
            + (f" ({why})" if why is not None else "")
        )
        lost.__cause__ = error
        return Input.GRACE_OVER, lost

    async def _back_off(self, error: BaseException | None) -> Next:
        delay = self._backoff.next_delay()
        logger.debug("reconnect failed (%s); next try in %.2f s", type(error).__name__, delay)
        await asyncio.sleep(delay)
        return Input.BACKOFF_OVER, None

    async def _open(self) -> Next:
        assert self._response is not None
        try:
            transport = await self._connection.open(self._response)
        except TokenExpired as exc:
            return Input.GONE, exc
        except (ConnectRefused, ConfigurationError) as exc:  # final: the same would fail again
            return Input.REFUSED, exc
        except (OSError, TimeoutError) as exc:
            return Input.UNREACHABLE, exc
        if self._state is not State.CONNECTING and self._state is not State.RECONNECTING:
            self._connection.detach()  # closed, or the backend ended, while opening
            await transport.close()
            self._check_usable()
            raise SessionClosed("the session was closed")
        self._failed_attempts = 0
        self._connection.attach(transport)
        return Input.OPENED, None

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
        for ticker in list(self._tickers or ()):
            ticker.cancel()

    async def _release(self) -> None:
        """Closes everything: waiting calls end with SessionClosed, tasks stop."""
        closed = SessionClosed("the session was closed")
        namespaces = self._namespaces()
        # As socket.io-client's disconnect(): connected namespaces hear "io client disconnect".
        for namespace in namespaces:
            if namespace.connected:
                namespace._fire("disconnect", Disconnected.of(None, "io client disconnect"))
        for namespace in namespaces:
            namespace._closed = True
            namespace._fail_all(closed)
        tasks = [self._reconnector, *(n._dispatcher for n in namespaces)]
        tasks += [*(self._background or ()), *(t._task for t in self._tickers or ())]
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

    async def _reconnect(self) -> None:
        """connect() after the server disconnected the session: open it again, retrying
        unreachable servers with backoff (up to ``reconnect_attempts``), as a reconnect does.

        Raises:
            JamsocketError: how it ended if it did not connect (refused, attempts exhausted,
                the backend ended, closed meanwhile).
        """
        grace = self._reconnector
        if grace is not None:  # calls cut by the kick learn their fate first
            await asyncio.wait([grace])
        await self._drive(Input.CONNECT)
        if self._state is not State.CONNECTED:
            self._check_usable()  # raises how it ended
            raise SessionClosed("the session was closed")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        if self._background is None:
            self._background = set()
        self._background.add(task)
        task.add_done_callback(self._background.discard)
