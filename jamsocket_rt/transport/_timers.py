"""Coarse timers: many deadlines that are rarely reached, on few event-loop timers.

Every ``call()`` of a Session has a timeout that almost never fires, and one
``loop.call_later`` per call (a heap push and a cancel) costs more than the rest of a pipelined
call. Here deadlines are rounded up to a tick (1/64 s, less for
short delays) and share one loop timer per tick: scheduling and cancelling is a dict insert and
a dict delete. A callback runs at most a tick late (and never early).
"""

from __future__ import annotations

import asyncio
import math
import sys
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["CoarseTimers", "Deadline", "coarse_timeout", "coarse_timers"]

#: Deadlines are rounded up to a multiple of this (seconds)...
TICK = 1 / 64
#: ...except for delays shorter than this many ticks, which get a finer one (delay / this).
FINE_BELOW = 16
_TICKS_PER_SECOND = 64
_FINE_LIMIT = TICK * FINE_BELOW


class Deadline:
    """A callback scheduled by :class:`CoarseTimers`; ``cancel()`` is cheap and idempotent."""

    __slots__ = ("_args", "_bucket", "_callback")

    def __init__(
        self, bucket: dict[Deadline, None], callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self._bucket: dict[Deadline, None] | None = bucket
        self._callback = callback
        self._args = args

    def cancel(self) -> None:
        bucket = self._bucket
        if bucket is not None:
            self._bucket = None
            self._args = ()  # let go of what the callback would have been given
            bucket.pop(self, None)

    def cancelled(self) -> bool:
        """True once cancelled or run."""
        return self._bucket is None


class CoarseTimers:
    """The coarse timers of one event loop (see the module docstring); use :func:`coarse_timers`."""

    __slots__ = ("__weakref__", "_buckets", "_fine", "_loop_ref")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: the timers are the value of a WeakKeyDictionary keyed by this loop, so a
        # strong reference would keep every loop (and its timers) alive for good.
        self._loop_ref = weakref.ref(loop)
        # A bucket per occupied tick: by tick number (of TICK), and for finer ticks by
        # (tick length, tick number).
        self._buckets: dict[int, dict[Deadline, None]] = {}
        self._fine: dict[tuple[float, int], dict[Deadline, None]] = {}

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Deadline:
        """Calls ``callback(*args)`` after at least ``delay`` seconds (at most a tick more)."""
        return self.call_later_from(self._loop.time(), delay, callback, *args)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop_ref()
        if loop is None:  # only a caller that kept the timers past their loop gets here
            raise RuntimeError("the event loop of these timers is gone")
        return loop

    def call_later_from(
        self, now: float, delay: float, callback: Callable[..., Any], *args: Any
    ) -> Deadline:
        """:meth:`call_later` for a caller that has just read the loop's clock (``now``)."""
        if delay < _FINE_LIMIT:
            return self._call_later_fine(now, delay, callback, args)
        # The next tick boundary strictly after the deadline: never early.
        number = int((now + delay) * _TICKS_PER_SECOND) + 1
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = {}
            self._loop.call_at(number * TICK, self._fire, number)
        deadline = Deadline(bucket, callback, args)
        bucket[deadline] = None
        return deadline

    def _call_later_fine(
        self, now: float, delay: float, callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> Deadline:
        tick = max(delay, 1e-3) / FINE_BELOW
        key = (tick, math.ceil((now + delay) / tick))
        bucket = self._fine.get(key)
        if bucket is None:
            bucket = self._fine[key] = {}
            self._loop.call_at(key[1] * tick, self._fire_fine, key)
        deadline = Deadline(bucket, callback, args)
        bucket[deadline] = None
        return deadline

    def _fire(self, number: int) -> None:
        self._run(self._buckets.pop(number, None))

    def _fire_fine(self, key: tuple[float, int]) -> None:
        self._run(self._fine.pop(key, None))

    def _run(self, bucket: dict[Deadline, None] | None) -> None:
        if not bucket:
            return
        for deadline in list(bucket):
            callback, args = deadline._callback, deadline._args
            deadline._bucket = None
            deadline._args = ()
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 (as the loop does for its own callbacks)
                self._loop.call_exception_handler(
                    {"message": "jamsocket_rt: a timer callback raised", "exception": exc}
                )


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CoarseTimers] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[weakref.ref[asyncio.AbstractEventLoop], CoarseTimers] | None = None


def coarse_timers(loop: asyncio.AbstractEventLoop) -> CoarseTimers:
    """The :class:`CoarseTimers` of ``loop`` (made on first use, gone with the loop)."""
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        return last[1]
    timers = _by_loop.get(loop)
    if timers is None:
        timers = _by_loop[loop] = CoarseTimers(loop)
    _last = (weakref.ref(loop), timers)
    return timers


class coarse_timeout:
    """``async with coarse_timeout(seconds, message):`` as ``asyncio.timeout``, on a coarse timer.

    The block is cancelled at most a tick after ``seconds``; the cancellation then leaves it as
    ``TimeoutError(message)``. Cheap enough for a thousand connects at once. ``message`` may be a
    function of ``seconds`` that makes it, so that a block which ends in time never builds it.
    """

    __slots__ = ("_expired", "_handle", "_message", "_seconds", "_task")

    def __init__(self, seconds: float, message: str | Callable[[float], str]) -> None:
        self._seconds = seconds
        self._message = message
        self._expired = False
        self._task: asyncio.Task[Any] | None = None
        self._handle: Deadline | None = None

    async def __aenter__(self) -> None:
        self._task = asyncio.current_task()
        timers = coarse_timers(asyncio.get_running_loop())
        self._handle = timers.call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self._expired and kind is not None and issubclass(kind, asyncio.CancelledError):
            if sys.version_info >= (3, 11) and self._task is not None:
                self._task.uncancel()
            message = self._message
            raise TimeoutError(
                message if isinstance(message, str) else message(self._seconds)
            ) from None
