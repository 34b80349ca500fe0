"""Ticker: a function called at a fixed rate on the Session's loop (``Session.every``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ..protocol.session import TickSchedule


class Ticker:
    """A fixed-rate tick started by :meth:`Session.every`; ``cancel()`` stops it.

    Attributes:
        interval: seconds between ticks.
        ticks: how many times the function ran.
        overruns: ticks skipped because the function (or the loop) ran late.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.ticks = 0
        self.overruns = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def __repr__(self) -> str:
        return f"<Ticker every {self.interval} s: {self.ticks} ticks, {self.overruns} overruns>"


async def run_ticker(
    ticker: Ticker,
    schedule: TickSchedule,
    fn: Callable[[], Any],
    on_overrun: Callable[[int], Any] | None,
    report_error: Callable[[Exception], None],
) -> None:
    """Calls ``fn`` on ``schedule`` until cancelled; skipped ticks are counted, not replayed."""
    loop = asyncio.get_running_loop()
    while True:
        deadline, missed = schedule.next(loop.time())
        if missed:
            ticker.overruns += missed
            if on_overrun is not None:
                on_overrun(missed)
        delay = deadline - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - user code: report it, keep ticking
            report_error(exc)
        ticker.ticks += 1
