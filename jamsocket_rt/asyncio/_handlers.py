"""Listeners and the order handlers run in: the part of a namespace that calls user code.

Handlers run one at a time, in arrival order, on the event loop: a synchronous handler with
nothing queued ahead of it runs at once (no task per message); anything else waits in a
bounded backlog drained by one task. When the backlog reaches ``max_backlog`` the owner stops
reading from the connection until it is down to half (back-pressure: nothing is dropped).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar, overload

from ..protocol.session import Listeners, payload_of, structure_payload
from ..transport.base import AckResponder

logger = logging.getLogger("jamsocket_rt.session")

F = TypeVar("F", bound=Callable[..., Any])

#: The event name that catches every event, as in python-socketio: ``handler(event, *args)``.
ANY_EVENT = "*"

# The handler backlog's reason to pause reading (streams use themselves).
_BACKLOG = "backlog"

#: The backlog of every dispatcher that never needed one: shared, always empty.
_NO_BACKLOG: deque[Any] = deque(maxlen=0)


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


#: The running event loop of this thread, or None (asyncio's C function: no exception raised).
current_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop
_thread_id = threading.get_ident


class Dispatcher:
    """Event handlers and lifecycle hooks of one namespace, and the backlog that orders them.

    Subclasses provide :meth:`_hold_reading`, :meth:`_release_reading` and
    :meth:`_loop_or_raise`, and set ``_closed``.
    """

    # Slots down the Session's classes: ten thousand sessions' instance dicts held 15 MiB (45
    # attributes are too many for a dict with shared keys). __dict__ and __weakref__ stay: a
    # user's own attributes and weak references work as before.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_any_outgoing",
        "_backlog",
        "_dispatcher",
        "_handlers",
        "_hooks",
        "_loop",
        "_loop_thread",
        "_max_backlog",
    )

    _closed: bool

    def __init__(self, max_backlog: int) -> None:
        self._max_backlog = max_backlog
        self._handlers: Listeners[_Handler] = Listeners()
        self._hooks: Listeners[_Handler] = Listeners()
        # Shared and empty until a handler run has to wait (most sessions never do).
        self._backlog: deque[tuple[tuple[_Handler, ...], tuple[Any, ...], AckResponder | None]]
        self._backlog = _NO_BACKLOG
        self._dispatcher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None  # the thread _own_loop last found it running in
        # on_any_outgoing's listeners; empty (and falsy: one check per send) for most.
        self._any_outgoing: tuple[_Handler, ...] = ()

    def _hold_reading(self, reason: object) -> None:
        raise NotImplementedError

    def _release_reading(self, reason: object) -> None:
        raise NotImplementedError

    def _loop_or_raise(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        """The session's event loop, checked to be the one running now.

        Raises:
            RuntimeError: called from another event loop or thread (named, with the remedy).
        """
        loop = self._loop
        # The loop that runs in this thread is the session's if the session's loop runs and
        # runs in this thread. Asking asyncio for the running loop would cost a getpid()
        # system call per send on Python 3.11 (its fork check), 4 % of a round trip.
        if loop is not None and self._loop_thread == _thread_id() and loop.is_running():
            return loop
        running = current_loop()
        if loop is None and running is not None:
            self._loop = loop = running
        if loop is None or running is not loop:
            self._wrong_loop(running)
        assert loop is not None
        self._loop_thread = _thread_id()
        return loop

    def _wrong_loop(self, running: asyncio.AbstractEventLoop | None) -> NoReturn:
        where = "a thread without an event loop" if running is None else "another event loop"
        raise RuntimeError(
            f"this {type(self).__name__} belongs to the event loop it connected on, and was "
            f"used from {where} (thread {threading.current_thread().name!r}). From another "
            "thread, use jamsocket_rt.SyncSession, or hand the coroutine to the session's "
            "loop: asyncio.run_coroutine_threadsafe(session.send(...), loop)"
        )

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

    def listeners(self, event: str) -> list[Callable[..., Any]]:
        """The handlers registered for ``event`` (socket.io-client's ``listeners``), in the
        order they run; ``listeners("*")`` gives the catch-all ones.

        Returns:
            A new list of the functions as given to :meth:`on`.
        """
        return [handler.key for handler in self._handlers.get(event)]

    def on_any_outgoing(self, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback(event, *args)`` for every event sent (socket.io-client's
        ``onAnyOutgoing``), calls included, when it is written to the connection (a queued
        send when the queue is flushed; a dropped volatile send never).

        It runs like a handler (one at a time, in order; an exception goes to ``on_error``).

        Returns:
            A callable that removes the callback.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError("callback: expected a callable")
        handler = _Handler(callback)
        self._any_outgoing = (*self._any_outgoing, handler)

        def remove() -> None:
            self._any_outgoing = tuple(h for h in self._any_outgoing if h is not handler)

        return remove

    def _notify_outgoing(self, event: str, args: Sequence[Any]) -> None:
        self._dispatch(self._any_outgoing, (event, *args), None)

    # ------------------------------------------------------------------ hooks

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
        if self._backlog is _NO_BACKLOG:
            self._backlog = deque()
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
