"""Pacing: when each session (or Locust user) starts its next iteration.

Every paced session follows an absolute schedule, ``anchor + (phase + k) * period`` for
k = 0, 1, 2..., so waiting never accumulates drift, and the phases of N sessions are spread
evenly over one period (session i of N: ``i / N``), so N sessions at R iterations per second
produce a steady N * R per second instead of N bursts per period.

Locust users are started one by one without knowing their final number: there the phase of the
k-th user is :func:`van_der_corput` (k), which keeps any number of users evenly spread (each new
user falls into the largest gap left by the earlier ones).

Everything here is pure arithmetic on times given by the caller.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

from attrs import define, field

__all__ = ["Pacer", "even_phase", "van_der_corput"]


def even_phase(index: int, count: int) -> float:
    """The phase of session ``index`` of ``count``: ``index / count``, in [0, 1).

    Raises:
        ValueError: ``count`` is not positive or ``index`` is outside ``range(count)``.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"even_phase: expected 0 <= index < count, got {index} of {count}")
    return index / count


def van_der_corput(index: int) -> float:
    """The ``index``-th term of the base-2 van der Corput sequence: 0, 1/2, 1/4, 3/4, 1/8...

    The first n terms of this sequence cut [0, 1) into gaps that differ by at most a factor of
    two, whatever n is: phases handed out this way stay spread as users keep arriving.

    Raises:
        ValueError: ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"van_der_corput: expected a non-negative index, got {index}")
    result = 0.0
    weight = 0.5
    while index:
        if index & 1:
            result += weight
        index >>= 1
        weight /= 2
    return result


@define
class Pacer:
    """The absolute schedule of one paced session.

    Attributes:
        period: seconds between two iterations (must be positive).
        anchor: the time of the period's start shared by every session (any clock; the
            caller's ``now`` values must use the same one).
        phase: this session's offset as a fraction of the period, in [0, 1).
        late: iterations started after their slot (the previous one ran over).
        missed: slots skipped entirely because the session was more than a period behind.
    """

    period: float
    anchor: float
    phase: float = 0.0
    late: int = field(default=0, init=False)
    missed: int = field(default=0, init=False)
    _next: int | None = field(default=None, init=False, alias="_next")

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.period, (int, float)) and self.period > 0):
            raise ValueError(f"period: expected a positive number, got {self.period!r}")
        if not 0 <= self.phase < 1:
            raise ValueError(f"phase: expected a fraction in [0, 1), got {self.phase!r}")

    def slot_time(self, k: int) -> float:
        """The time of slot ``k``."""
        return self.anchor + (self.phase + k) * self.period

    def next_start(self, now: float) -> float:
        """When the next iteration should start, given that the previous one ended at ``now``.

        The first call picks the first slot at or after ``now``. After that, each call takes
        the slot following the previous one: if its time has passed, the iteration starts at
        once (counted in ``late``); slots more than one period in the past are skipped (counted
        in ``missed``), so a session that fell behind does not fire a burst to catch up.

        Returns:
            The start time, never earlier than ``now``.
        """
        position = (now - self.anchor) / self.period - self.phase
        if self._next is None:
            k = max(0, math.ceil(position - 1e-9))
        else:
            k = self._next
            # The latest slot at or before now may still start (late); older ones are gone.
            latest = math.floor(position)
            if latest > k:
                self.missed += latest - k
                k = latest
        self._next = k + 1
        start = self.slot_time(k)
        if start < now:
            self.late += 1
            return now
        return start


#: Shifts each Locust worker's phases by the golden ratio, so workers interleave evenly too.
_GOLDEN = 0.6180339887498949


def spread_pacing(period: float) -> Callable[[Any], float]:
    """A Locust ``wait_time`` like Locust's ``constant_pacing``, with users spread over the period.

    Each user runs its tasks on an absolute schedule, ``(phase + k) * period`` seconds of the
    wall clock, so nothing drifts and every worker shares the same grid. The k-th user of a
    process gets the phase :func:`~jamsocket_rt.load.pacing.van_der_corput` (k) (shifted per
    Locust worker), which keeps any number of users evenly spread. ``constant_pacing``, by
    contrast, keeps users that started together in step: after a ramp-up, their tasks come in
    bursts, and latencies measure the bursts.

    Args:
        period: seconds from one task's start to the next's.

    Raises:
        ValueError: ``period`` is not positive.
    """
    if not period > 0:
        raise ValueError(f"period: expected a positive number of seconds, got {period!r}")
    numbers = itertools.count()

    def wait_time(user: Any) -> float:
        pacer: Pacer | None = getattr(user, "_jrt_pacer", None)
        if pacer is None:
            runner = user.environment.runner
            worker = getattr(runner, "worker_index", 0) or 0
            phase = (van_der_corput(next(numbers)) + worker * _GOLDEN) % 1.0
            pacer = Pacer(period=period, anchor=0.0, phase=phase)
            user._jrt_pacer = pacer
        now = time.time()
        return max(0.0, pacer.next_start(now) - now)

    return wait_time
