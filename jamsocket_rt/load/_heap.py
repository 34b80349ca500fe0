"""The load runner's garbage-collector policy: the automatic collector sits out the run.

Thousands of sessions make a heap of hundreds of thousands of objects. While they connect, the
heap grows by a quarter again and again, and each time the collector scans all of it: at
10,000 sessions, 2.2 of the 10 s that connecting took. During the load, a full collection
stops the event loop for hundreds of milliseconds, and those stalls would be measured as
latency; freezing the heap is not enough, as what is in flight at any moment (a timer, a
future, a coroutine per session) lives long enough to reach the oldest generation. A
successful connect or call leaves no cyclic garbage (reference counting frees all of it), so
the automatic collector is off from the first session to the last; the heap is collected and
frozen once when the load window opens, and collected after a tick with errors (tracebacks
make cycles) and every :data:`GC_PERIOD` seconds (for user scenarios that make cycles).
"""

from __future__ import annotations

import gc

__all__ = ["GC_PERIOD", "HeapPolicy"]

#: During the load, the garbage collector runs at least this often, in seconds.
GC_PERIOD = 60.0


class HeapPolicy:
    """Pauses the automatic collector for a run and restores it after (see the module)."""

    __slots__ = ("_enabled_before", "_frozen", "_last_collect", "_paused")

    def __init__(self) -> None:
        self._paused = False
        self._frozen = False
        self._enabled_before = True
        self._last_collect = 0.0

    def pause(self, now: float) -> None:
        """Switches the automatic collector off (from the first session on)."""
        self._enabled_before = gc.isenabled()
        gc.disable()
        self._paused = True
        self._last_collect = now

    def freeze(self, now: float) -> None:
        """Collects once, then moves what is left out of every later collection's scan."""
        gc.collect()
        gc.freeze()
        self._frozen = True
        self._last_collect = now

    def tick(self, now: float, *, had_errors: bool) -> None:
        """Collects after a tick with errors, or when :data:`GC_PERIOD` has passed."""
        if self._paused and (had_errors or now - self._last_collect >= GC_PERIOD):
            gc.collect()
            self._last_collect = now

    def resume(self) -> None:
        """Restores the collector as it was before :meth:`pause`."""
        if self._frozen:
            self._frozen = False
            gc.unfreeze()
        if self._paused:
            self._paused = False
            if self._enabled_before:
                gc.enable()
