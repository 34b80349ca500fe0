"""A call waiting for its acknowledgement, and the marker for "the session's default"."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from typing import Any

from ..transport._timers import Deadline


class _Default(enum.Enum):
    """Marks 'use the session's default' where None means 'no timeout'."""

    DEFAULT = 0


class _Call:
    """A call waiting for its acknowledgement."""

    __slots__ = ("args", "event", "future", "inflight", "retry", "timer")

    def __init__(
        self,
        event: str,
        args: Sequence[Any],
        future: asyncio.Future[Any],
        retry: bool,
        inflight: dict[int, _Call] | None = None,
    ):
        self.event = event
        self.args = args
        self.future = future
        self.retry = retry
        self.inflight = inflight  # the namespace's calls in flight, left when acknowledged
        self.timer: Deadline | asyncio.TimerHandle | None = None

    def acked(self, args: list[Any]) -> None:
        """The transport's acknowledgement callback (a bound method: no closure per call)."""
        if self.inflight is not None:
            self.inflight.pop(id(self), None)
        self.resolve(args)

    def resolve(self, args: list[Any]) -> None:
        if self.timer is not None:
            self.timer.cancel()
        future = self.future
        if not future.done():
            # payload_of(), inlined: this runs once per acknowledgement.
            future.set_result(None if not args else args[0] if len(args) == 1 else tuple(args))

    def fail(self, exc: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_exception(exc)
