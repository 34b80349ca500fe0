"""The coordinator of the load runner: :func:`run_load`.

It starts the dev server (in a process of its own, so the proxy does not eat the load process's
CPU) unless another target is given, runs one :class:`~._driver.Worker` in its own event loop or
``processes`` worker processes (fed their configuration through a pipe), merges their
snapshots, prints progress, and returns the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import os
import sys
from typing import Any, TextIO

import attrs
from attrs import define

from . import _resources
from ._driver import Worker, make_client, resolve_scenario
from ._loop import resolve_loop, running_loop_kind
from ._processes import dev_server_process, run_worker_processes
from .config import DevTarget, LoadConfig
from .report import RunFacts, build_report, format_progress
from .scenarios import LoadedScenario
from .stats import Aggregate, Snapshot, TimelineRow

__all__ = ["LoadResult", "Worker", "resolve_scenario", "run_load"]

#: How many ticks the rolling percentiles of the progress line cover.
ROLLING_TICKS = 5


@define
class LoadResult:
    """What :func:`run_load` returns.

    Attributes:
        report: the final report (JSON-ready; see ``build_report``).
        aggregate: every measurement, merged (for plots and custom analysis).
        facts: what the runner knew besides the measurements.
    """

    report: dict[str, Any]
    aggregate: Aggregate
    facts: RunFacts

    @property
    def failure(self) -> str | None:
        """Why the run itself failed (no session ever became ready), or None.

        Such a run measured nothing: it fails whatever the ``--fail-if`` thresholds say.
        """
        sessions = self.report["sessions"]
        if sessions["ready"] == 0:
            return (
                f"no session became ready ({sessions['failed']} of {sessions['requested']} "
                "failed): the run measured nothing"
            )
        return None

    @property
    def failed_thresholds(self) -> list[str]:
        """The ``--fail-if`` conditions that held."""
        return [t["threshold"] for t in self.report["thresholds"] if t["failed"]]


class _Progress:
    """Progress lines: rewritten in place on a terminal, one plain line per tick elsewhere."""

    def __init__(self, stream: TextIO | None, tty: bool | None, live: bool) -> None:
        self.stream = stream
        self.tty = stream is not None and (stream.isatty() if tty is None else tty)
        self.live = live
        self._open_line = False

    def show(self, agg: Aggregate, row: TimelineRow) -> None:
        if self.stream is None or not self.live:
            return
        line = format_progress(agg, row, ROLLING_TICKS)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.stream is None:
            return
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._open_line and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


def _backends_per_process(config: LoadConfig) -> int:
    per_process = math.ceil(config.sessions / config.processes)
    if config.keys == "new":
        return per_process
    if config.keys == "shared":
        return 1
    assert isinstance(config.keys, int)
    return min(config.keys, per_process)


async def run_load(
    config: LoadConfig,
    *,
    scenario: LoadedScenario | None = None,
    progress: TextIO | None = sys.stderr,
    live: bool = True,
    tty: bool | None = None,
) -> LoadResult:
    """Runs the load described by ``config`` and returns its report.

    Args:
        config: the run.
        scenario: the scenario already loaded (None: load ``config.scenario`` now; worker
            processes always load it themselves).
        progress: where progress lines and warnings go (None: nowhere).
        live: print a progress line per tick (warnings are printed either way).
        tty: force (True) or forbid (False) in-place progress; None asks ``progress``.

    Returns:
        The report, the merged measurements and the run's facts.

    Raises:
        ValueError: the scenario cannot be loaded, or worker processes are to run on a loop
            that is not installed (``config.loop``).
        ConfigurationError: the target's settings are wrong.
        RuntimeError: the dev server or a worker process could not start.
    """
    if scenario is None:
        scenario = resolve_scenario(config)  # fails early, before anything starts
    # The report names the loop the sessions run on: this one, or the workers' own.
    loop_kind = running_loop_kind() if config.processes == 1 else resolve_loop(config.loop)
    config = attrs.evolve(config, loop=loop_kind)
    printer = _Progress(progress, tty, live)
    per_process = math.ceil(config.sessions / config.processes)
    fd_needed = _resources.descriptors_needed(per_process, _backends_per_process(config))
    fd_limit, fd_hard = _resources.raise_open_file_limit(fd_needed)
    if fd_limit < fd_needed:
        printer.message(_resources.fd_limit_advice(fd_limit, fd_hard, fd_needed, per_process))
    agg = Aggregate(config.processes, config.interval, rolling=ROLLING_TICKS)
    facts = RunFacts(
        started_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        elapsed=0.0,
        steady_start=config.ramp_seconds,
        steady_end=(config.ramp_seconds + config.duration) if config.duration else None,
        fd_limit=fd_limit,
        fd_needed=fd_needed,
        cpu_count=os.cpu_count() or 0,
        worker_sessions={
            w: len(range(w, config.sessions, config.processes)) for w in range(config.processes)
        },
    )
    loop = asyncio.get_running_loop()
    # Whole-machine CPU readings after each tick: (seconds from the start, busy, total).
    machine: list[tuple[float, tuple[float, float]]] = []

    def show(rows: list[TimelineRow]) -> None:
        for row in rows:
            facts.load_average = max(facts.load_average, _resources.load_average())
            reading = _resources.machine_cpu()
            if reading is not None:
                machine.append((row.end, reading))
            printer.show(agg, row)

    def on_snapshot(worker: int, snapshot: Snapshot) -> None:
        show(agg.add(worker, snapshot))

    def on_worker_lost(worker: int) -> None:
        show(agg.finish(worker))

    async with contextlib.AsyncExitStack() as stack:
        api_url = None
        if isinstance(config.target, DevTarget):
            api_url = await stack.enter_async_context(dev_server_process(config.target.backend))
        else:
            # Settings errors (a missing JAMSOCKET_* variable...) surface here, once, rather
            # than as every worker process dying.
            client = make_client(config, api_url)
            if client is not None:
                await client.aclose()
        # Worker processes need a moment to start; one in-process worker starts at once.
        anchor = loop.time() + (0.05 if config.processes == 1 else 1.0)
        reading = _resources.machine_cpu()
        if reading is not None:
            machine.append((0.0, reading))
        try:
            if config.processes == 1:
                worker = Worker(
                    config,
                    scenario,
                    worker=0,
                    anchor=anchor,
                    api_url=api_url,
                    emit=lambda snapshot: on_snapshot(0, snapshot),
                )
                await worker.run()
            else:
                failures = await run_worker_processes(
                    config, anchor, api_url, on_snapshot, on_worker_lost
                )
                for failure in failures:
                    printer.message(f"warning: {failure}")
                    facts.notes.append(failure)
        finally:
            printer.end()
        facts.elapsed = loop.time() - anchor
    agg.flush()
    if agg.timeline and (not machine or machine[-1][0] < agg.timeline[-1].end):
        reading = _resources.machine_cpu()
        if reading is not None:
            machine.append((agg.timeline[-1].end, reading))
    _set_window(facts, agg, config)
    facts.machine_cpu_percent = _machine_share(machine, facts)
    report = build_report(config, agg, facts)
    return LoadResult(report=report, aggregate=agg, facts=facts)


def _set_window(facts: RunFacts, agg: Aggregate, config: LoadConfig) -> None:
    """The steady window: from the last worker's window opening to the first one's end."""
    starts = agg.window_starts()
    if not starts:
        return  # no window opened (the run was cut short): keep the planned one
    facts.steady_start = max(starts)
    if config.duration is not None:
        facts.steady_end = min(starts) + config.duration


def _machine_share(
    readings: list[tuple[float, tuple[float, float]]], facts: RunFacts
) -> float | None:
    """The whole machine's CPU use in the steady window (the whole run if it is too short)."""
    end = facts.steady_end if facts.steady_end is not None else facts.elapsed
    inside = [r for t, r in readings if facts.steady_start - 1e-9 <= t <= end + 1e-9]
    if len(inside) < 2:
        inside = [r for _, r in readings]
    if len(inside) < 2:
        return None
    return _resources.machine_cpu_percent(inside[0], inside[-1])
