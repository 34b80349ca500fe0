"""The Session's logic that needs no I/O: queued sends, listeners, status tracking, backoff.

The asyncio :class:`~jamsocket_rt.Session` and the blocking
:class:`~jamsocket_rt.SyncSession` are thin front ends over these pieces, so the rules (what is
queued, in which order things are delivered, when a status counts as new, how long to wait
before reconnecting) live in one place and are tested without a network.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import json
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import attrs
from attrs import define, field
from cattrs.errors import ClassValidationError, IterableValidationError

from .. import _converter as conv
from .._errors import InvalidResponse, SendQueueFull
from .._models import BackendState, BackendStatus, status_rank

T = TypeVar("T")


def payload_of(args: Sequence[Any]) -> Any:
    """How received arguments are handed to the user: none -> None, one -> itself, else a tuple."""
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


def structure_payload(value: Any, cls: Any, what: str) -> Any:
    """A received payload as ``cls`` (an attrs class, a dataclass, or any type cattrs knows).

    Structured by the project's one converter, with its strict rules ("1" is not an int).

    Raises:
        InvalidResponse: the payload does not fit; every bad field is named.
    """
    name = getattr(cls, "__name__", str(cls))
    try:
        return conv.converter.structure(value, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        raise InvalidResponse(f"{what} does not fit {name}", conv.describe_errors(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        detail = str(exc) if isinstance(exc, conv.FieldError) else type(exc).__name__
        raise InvalidResponse(f"{what} does not fit {name}", [f"value: {detail}"]) from None


_WIRE_NATIVE = frozenset({str, int, float, bool, type(None), list, dict, bytes, bytearray})


def to_wire(args: Sequence[Any]) -> Sequence[Any]:
    """Outgoing arguments with attrs and dataclass instances unstructured to plain data.

    Plain arguments (the common case) pass through untouched, at the cost of one type check
    each.
    """
    for arg in args:
        if type(arg) not in _WIRE_NATIVE:
            break
    else:
        return args
    return [_plain(arg) for arg in args]


def _plain(value: Any) -> Any:
    kind = type(value)
    if attrs.has(kind) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return _enum_values(conv.converter.unstructure(value))
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _enum_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _enum_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_enum_values(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


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
    args: Sequence[Any]
    call: T | None = None


#: The queue of every Outbox that never queued: shared, always empty (``maxlen=0``).
_EMPTY: deque[Any] = deque(maxlen=0)


@define
class Outbox(Generic[T]):
    """A bounded FIFO of sends and calls made while there is no connection.

    Bounded so that a disconnected client cannot grow without limit: ``put`` raises
    :class:`SendQueueFull` instead. Flushed in order on (re)connect.
    """

    maxsize: int = 10_000
    # Shared and empty until something is queued: most sessions never queue anything.
    _items: deque[Outgoing[T]] = field(default=_EMPTY, init=False)

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
        if self._items is _EMPTY:
            self._items = deque()
        self._items.append(item)

    def pop(self) -> Outgoing[T]:
        return self._items.popleft()

    def push_front(self, items: Sequence[Outgoing[T]]) -> None:
        """Put back items that could not be written, keeping their order before the rest."""
        if not items:
            return
        if self._items is _EMPTY:
            self._items = deque()
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


@define
class TickSchedule:
    """Deadlines of a fixed-rate tick on an absolute schedule, so it never drifts.

    ``next(now)`` gives the next deadline and how many ticks were missed: a late tick is not
    made up with a burst; the missed ones are skipped and counted as overruns.
    """

    interval: float
    start: float
    ticks: int = 0

    def __attrs_post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError("interval: expected a positive number of seconds")

    def next(self, now: float) -> tuple[float, int]:
        """The next deadline after tick ``ticks``, and the number of ticks skipped."""
        deadline = self.start + (self.ticks + 1) * self.interval
        missed = 0
        if now > deadline + self.interval:
            missed = int((now - deadline) // self.interval)
        self.ticks += 1 + missed
        return self.start + self.ticks * self.interval, missed


@define
class LatencyEstimate:
    """Round-trip time: the last sample and a smoothed value (TCP's SRTT, alpha = 1/8).

    Attributes:
        last: the latest round trip, in seconds (None before the first).
        smoothed: the exponentially smoothed round trip, in seconds.
        samples: how many round trips were measured.
    """

    last: float | None = None
    smoothed: float | None = None
    samples: int = 0

    def add(self, rtt: float) -> None:
        self.last = rtt
        self.smoothed = rtt if self.smoothed is None else self.smoothed + (rtt - self.smoothed) / 8
        self.samples += 1
