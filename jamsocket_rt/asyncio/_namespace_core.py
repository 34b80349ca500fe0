"""A namespace's side the connection and the Session's lifecycle drive.

:class:`NamespaceCore` is the base of :class:`~jamsocket_rt.asyncio.namespace.Namespace` (whose
module keeps the public surface) that performs what they decide: events delivered to
listeners, waiters and streams; socket.io-client's per-Socket ``sendBuffer`` (the sends and
calls queued while the namespace is not connected) written in order; the calls in flight set
aside by a drop (retried ones re-queued, the others held until the verdict) and failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import JamsocketError, SessionClosed
from ..protocol.session import Listeners, Outbox, Outgoing, payload_of
from ..transport.base import AckResponder, Transport
from ._calls import _Call
from ._handlers import ANY_EVENT, Dispatcher

if TYPE_CHECKING:
    from .connection import Connection
    from .stream import EventStream


class NamespaceCore(Dispatcher):
    """What the connection and the lifecycle do to a namespace (``Namespace`` sets the state)."""

    __slots__ = (
        "_inflight",
        "_joined",
        "_unanswered",
        "events_received",
        "events_sent",
    )

    _connection: Connection
    #: The namespace written on emit: None for the transport's own (the hot path).
    _emit_nsp: str | None
    #: True while this namespace's CONNECT is answered on the current connection.
    _joined: bool
    _joined_waiter: asyncio.Future[None] | None
    _outbox: Outbox[_Call]
    _inflight: dict[int, _Call]
    #: Cut by a connection loss, awaiting the verdict.
    _unanswered: list[_Call]
    _waiters: dict[str, list[asyncio.Future[Any]]]
    _streams: Listeners[EventStream]
    events_sent: int
    events_received: int

    def _call_timed_out(self, call: _Call, timeout: float) -> None:
        self._inflight.pop(id(call), None)
        self._outbox.remove_if(lambda item: item.call is call)
        call.fail(TimeoutError(f"no acknowledgement for {call.event!r} within {timeout} s"))

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

    def _flush(self) -> None:
        """Write queued sends and calls in order while the connection is up."""
        transport = self._connection.transport
        while self._outbox and transport is not None and transport.connected and self._joined:
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
            transport.emit(event, args, None, self._emit_nsp)
        else:
            if call.future.done():
                return
            if self._emit_nsp is None:
                transport.emit(event, args, call.acked)
            else:
                transport.emit(event, args, call.acked, self._emit_nsp)
            # Only once written: an emit that raises (TypeError) leaves nothing in flight.
            self._inflight[id(call)] = call
        self.events_sent += 1
        if self._any_outgoing:
            self._notify_outgoing(event, args)

    def _set_aside(self) -> None:
        """The connection dropped: re-queue retried calls (in the order they were sent) and
        hold the others until the verdict (a backend's end, or a lost connection)."""
        self._joined = self._emit_nsp is None
        retried = []
        for call in list(self._inflight.values()):
            if call.retry and not call.future.done():
                retried.append(Outgoing(call.event, call.args, call))
            else:
                self._unanswered.append(call)
        self._inflight.clear()
        self._outbox.push_front(retried)

    def _fail_unanswered(self, lost: JamsocketError) -> None:
        """Calls cut by the drop fail (with ConnectionLost, or how the backend ended)."""
        unanswered, self._unanswered = self._unanswered, []
        for call in unanswered:
            call.fail(lost)

    def _fail_all(self, exc: JamsocketError) -> None:
        if self._joined_waiter is not None and not self._joined_waiter.done():
            self._joined_waiter.set_exception(exc)
            self._joined_waiter.exception()  # retrieved: nobody may be waiting
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
