"""The Session's logic that needs no I/O: queued sends, listeners, status tracking, backoff.

The asyncio :class:`~jamsocket_rt.Session` and the blocking
:class:`~jamsocket_rt.SyncSession` are thin front ends over these pieces, so the rules (what is
queued, in which order things are delivered, when a status counts as new, how long to wait
before reconnecting) live in one place and are tested without a network.
"""

from __future__ import annotations

import copy
import json
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from attrs import define, field

from .._errors import SendQueueFull
from .._models import BackendState, BackendStatus, status_rank

T = TypeVar("T")


def payload_of(args: Sequence[Any]) -> Any:
    """How received arguments are handed to the user: none -> None, one -> itself, else a tuple."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


#: Socket.IO's own event names: socket.io-client refuses to emit them, and a server would take
#: them for lifecycle events.
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)


def check_event_name(event: object) -> None:
    """Refuse an event name that cannot be sent.

    Raises:
        TypeError: it is not a string.
        ValueError: it is empty or reserved by Socket.IO (:data:`RESERVED_EVENTS`).
    """
    if not isinstance(event, str):
        raise TypeError(f"event: expected a string, got {type(event).__name__}")
    if not event:
        raise ValueError("event: expected a non-empty name")
    if event in RESERVED_EVENTS:
        raise ValueError(f"event: {event!r} is reserved by Socket.IO and cannot be sent")


def checked_copy(args: Sequence[Any]) -> list[Any]:
    """A deep copy of outgoing arguments, after checking that they can be serialized.

    Queued sends are copied (as the JS client queues JSON copies) so that mutating an object
    after ``send()`` does not change what is sent later.

    Raises:
        TypeError: an argument is not JSON-serializable (bytes are allowed: they travel as
            Socket.IO binary attachments).
    """
    try:
        json.dumps(args, default=_allow_binary)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot send: payload is not JSON-serializable ({exc})") from None
    return copy.deepcopy(list(args))


def _allow_binary(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@define(slots=True)
class Outgoing(Generic[T]):
    """One queued send (``call`` is None) or call (``call`` is the caller's handle)."""

    event: str
    args: list[Any]
    call: T | None = None


@define
class Outbox(Generic[T]):
    """A bounded FIFO of sends and calls made while there is no connection.

    Bounded so that a disconnected client cannot grow without limit: ``put`` raises
    :class:`SendQueueFull` instead. Flushed in order on (re)connect.
    """

    maxsize: int = 10_000
    _items: deque[Outgoing[T]] = field(factory=deque, init=False)

    def put(self, item: Outgoing[T]) -> None:
        """Queue ``item``.

        Raises:
            SendQueueFull: ``maxsize`` items are already waiting.
        """
        if len(self._items) >= self.maxsize:
            raise SendQueueFull(
                f"{len(self._items)} sends are already waiting for a connection "
                f"(max_queue={self.maxsize}); nothing was queued"
            )
        self._items.append(item)

    def pop(self) -> Outgoing[T]:
        return self._items.popleft()

    def push_front(self, items: Sequence[Outgoing[T]]) -> None:
        """Put back items that could not be written, keeping their order before the rest."""
        self._items.extendleft(reversed(items))

    def remove_if(self, predicate: Callable[[Outgoing[T]], bool]) -> list[Outgoing[T]]:
        """Take out (and return) every queued item matching ``predicate``."""
        removed = [item for item in self._items if predicate(item)]
        if removed:
            self._items = deque(item for item in self._items if not predicate(item))
        return removed

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Outgoing[T]]:
        return iter(self._items)


@define
class Listeners(Generic[T]):
    """Callbacks by name, copy-on-write so that registering from another thread is safe.

    Each list is replaced, never mutated, so an iteration in progress on the event loop
    thread is never disturbed by an ``add`` or ``remove`` from the caller's thread.
    """

    _by_name: dict[str, tuple[T, ...]] = field(factory=dict, init=False)

    def add(self, name: str, item: T) -> None:
        self._by_name[name] = (*self._by_name.get(name, ()), item)

    def remove(self, name: str, item: T) -> bool:
        """Remove the first registration of ``item``; True if there was one."""
        items = self._by_name.get(name, ())
        for index, candidate in enumerate(items):
            if candidate == item:
                rest = items[:index] + items[index + 1 :]
                if rest:
                    self._by_name[name] = rest
                else:
                    del self._by_name[name]
                return True
        return False

    def get(self, name: str) -> tuple[T, ...]:
        return self._by_name.get(name, ())

    def names(self) -> list[str]:
        return list(self._by_name)


@define
class StatusTracker:
    """Merges statuses from every source (first GET, stream, ready_url, proxy) into one story.

    A status is *new* when it moves the backend forward in its lifecycle; repeats and stale
    statuses from a replayed or resumed stream are dropped, so callbacks fire once per status.
    An unknown status (from a newer server) is passed on once but never counts as ready or
    terminated.
    """

    latest: BackendState | None = None
    ready: bool = False
    terminal: BackendState | None = None
    _last_known: BackendStatus | None = field(default=None, init=False)
    _unknown_seen: set[str] = field(factory=set, init=False)

    def update(self, state: BackendState) -> bool:
        """Record ``state``; True if it is new (callbacks should fire)."""
        if self.terminal is not None:
            return False
        if not isinstance(state.status, BackendStatus):
            if state.status in self._unknown_seen:
                return False
            self._unknown_seen.add(state.status)
            self.latest = state
            return True
        # Order is judged against the last *known* status, so that an unknown one in between
        # does not let a replayed history through again.
        if self._last_known is not None and (
            state.status is self._last_known
            or status_rank(state.status) < status_rank(self._last_known)
        ):
            return False
        self._last_known = state.status
        self.latest = state
        if state.is_ready:
            self.ready = True
        if state.is_terminated:
            self.terminal = state
        return True

    @property
    def ending(self) -> bool:
        """True once the backend is terminating (or has terminated): no new token will help."""
        return self._last_known is not None and status_rank(self._last_known) >= status_rank(
            BackendStatus.TERMINATING
        )

    def mark_ready(self, state: BackendState) -> bool:
        """ready_url answered: the backend is ready even if the stream has not said so yet."""
        if self.ready or self.terminal is not None:
            return False
        return self.update(state)


@define
class Backoff:
    """Exponential backoff with "equal jitter" for reconnecting.

    ``next_delay()`` returns a delay in ``[c/2, c]`` where
    ``c = min(maximum, initial * factor**attempt)``; ``reset()`` after a success.
    """

    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    attempt: int = 0
    _random: Callable[[], float] = field(default=random.random, repr=False)

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return ceiling * (0.5 + 0.5 * self._random())

    def reset(self) -> None:
        self.attempt = 0
