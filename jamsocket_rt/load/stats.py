"""Measurements of a load run: what each worker records, and how the coordinator adds them up.

A worker (one event loop, in this process or another) records into a :class:`Recorder`: a
histogram per phase (``connect_api``, ``ready``, ``socket_connect``) and per operation (an
event's round trip, a broadcast's receive latency...), errors by where and kind, and its
sessions' counters. Every tick it hands over a :class:`Snapshot` of what happened since the
previous one, which travels as JSON between processes. The coordinator's :class:`Aggregate`
merges the snapshots of every worker into totals and a per-tick timeline.

Pure bookkeeping: no clock is read here; times come from the caller.
"""

from __future__ import annotations

import errno
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import define, field

from .histogram import LatencyHistogram

__all__ = [
    "PHASES",
    "Aggregate",
    "Recorder",
    "SessionCounts",
    "Snapshot",
    "TimelineRow",
    "error_kind",
    "merge_histograms",
]

#: The phases of a session's start, in order: the platform API's connect call, the wait until
#: the backend is ready, and the Socket.IO connection.
PHASES = ("connect_api", "ready", "socket_connect")


def error_kind(exc: BaseException) -> str:
    """A short, stable name for a kind of failure: the class, plus what tells cases apart.

    ``ApiError 429``, ``OSError EMFILE``, ``TimeoutError``, ``ConnectionLost``... Never a
    message (messages vary per occurrence and might carry details nobody asked for).
    """
    name = type(exc).__name__
    status = getattr(exc, "http_status", None)
    if isinstance(status, int):
        return f"{name} {status}"
    # A wrapper (the transport's ConnectionError) hides the system error it was raised from,
    # and that error (EMFILE, EADDRNOTAVAIL...) is what tells a machine's limit apart.
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            break
        code = cause.errno if isinstance(cause, OSError) else None
        if code is not None and code in errno.errorcode:
            return f"{name} {errno.errorcode[code]}"
        cause = cause.__cause__ or cause.__context__
    return name


@define
class SessionCounts:
    """Cumulative counts of one worker's sessions (or, summed, of all)."""

    started: int = 0
    ready: int = 0
    failed: int = 0
    finished: int = 0
    disconnects: int = 0
    reconnects: int = 0

    @property
    def connecting(self) -> int:
        """Started but neither ready nor failed yet."""
        return max(0, self.started - self.ready - self.failed)

    @property
    def active(self) -> int:
        """Ready and not finished."""
        return max(0, self.ready - self.finished)

    def add(self, other: SessionCounts) -> None:
        self.started += other.started
        self.ready += other.ready
        self.failed += other.failed
        self.finished += other.finished
        self.disconnects += other.disconnects
        self.reconnects += other.reconnects

    def to_dict(self) -> dict[str, int]:
        return {
            "started": self.started,
            "ready": self.ready,
            "failed": self.failed,
            "finished": self.finished,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionCounts:
        return cls(**{key: int(data.get(key, 0)) for key in cls().to_dict()})


def _histograms_to_dict(histograms: Mapping[str, LatencyHistogram]) -> dict[str, Any]:
    return {name: h.to_dict() for name, h in histograms.items() if h.count}


def _histograms_from_dict(data: Mapping[str, Any]) -> dict[str, LatencyHistogram]:
    return {name: LatencyHistogram.from_dict(h) for name, h in data.items()}


@define
class Snapshot:
    """What one worker measured during one tick (counters are cumulative, the rest is new).

    Attributes:
        tick: the tick's number (tick k ends ``(k + 1) * interval`` after the run's start).
        phases: latency histograms of the session phases, by phase name.
        operations: latency histograms by operation name.
        errors: failures by ``(where, kind)``: where is an operation or a phase.
        sessions: the worker's cumulative session counts.
        late: paced iterations started after their slot, cumulative.
        missed: paced slots skipped because a session was a period behind, cumulative.
        cpu_seconds: the worker process's CPU time so far.
        loop_lag: how late the worker's event loop ran a timer during the tick.
        rss_baseline: the worker's resident memory before its first session, in bytes.
        rss_peak: the worker's peak resident memory so far, in bytes.
        window_start: seconds from the run's start to the opening of the worker's load window
            (every session ready or failed), None while it is not open.
        final: the worker's last snapshot.
    """

    tick: int
    phases: dict[str, LatencyHistogram] = field(factory=dict)
    operations: dict[str, LatencyHistogram] = field(factory=dict)
    errors: Counter[tuple[str, str]] = field(factory=Counter)
    sessions: SessionCounts = field(factory=SessionCounts)
    late: int = 0
    missed: int = 0
    cpu_seconds: float = 0.0
    loop_lag: LatencyHistogram = field(factory=LatencyHistogram)
    rss_baseline: int = 0
    rss_peak: int = 0
    window_start: float | None = None
    final: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (for a worker process's pipe)."""
        return {
            "tick": self.tick,
            "phases": _histograms_to_dict(self.phases),
            "operations": _histograms_to_dict(self.operations),
            "errors": [[where, kind, n] for (where, kind), n in self.errors.items()],
            "sessions": self.sessions.to_dict(),
            "late": self.late,
            "missed": self.missed,
            "cpu_seconds": self.cpu_seconds,
            "loop_lag": self.loop_lag.to_dict(),
            "rss_baseline": self.rss_baseline,
            "rss_peak": self.rss_peak,
            "window_start": self.window_start,
            "final": self.final,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        """The snapshot :meth:`to_dict` described.

        Raises:
            ValueError: the data is malformed.
        """
        try:
            return cls(
                tick=int(data["tick"]),
                phases=_histograms_from_dict(data["phases"]),
                operations=_histograms_from_dict(data["operations"]),
                errors=Counter({(str(w), str(k)): int(n) for w, k, n in data["errors"]}),
                sessions=SessionCounts.from_dict(data["sessions"]),
                late=int(data["late"]),
                missed=int(data["missed"]),
                cpu_seconds=float(data["cpu_seconds"]),
                loop_lag=LatencyHistogram.from_dict(data["loop_lag"]),
                rss_baseline=int(data["rss_baseline"]),
                rss_peak=int(data["rss_peak"]),
                window_start=(
                    None if data.get("window_start") is None else float(data["window_start"])
                ),
                final=bool(data["final"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a snapshot: {exc!r}") from None


class Recorder:
    """One worker's measurements since its last snapshot, plus its cumulative counters.

    The worker's event loop calls the ``record_*`` methods; :meth:`snapshot` hands over what
    was recorded and starts the next tick.
    """

    def __init__(self) -> None:
        self.sessions = SessionCounts()
        self.late = 0
        self.missed = 0
        self._phases: dict[str, LatencyHistogram] = {}
        self._operations: dict[str, LatencyHistogram] = {}
        self._errors: Counter[tuple[str, str]] = Counter()
        self._loop_lag = LatencyHistogram()

    def operation(self, name: str) -> LatencyHistogram:
        """The current tick's histogram of ``name`` (hot paths keep it until the tick ends)."""
        histogram = self._operations.get(name)
        if histogram is None:
            histogram = self._operations[name] = LatencyHistogram()
        return histogram

    def record(self, name: str, seconds: float) -> None:
        """Records one operation's latency."""
        self.operation(name).record(round(seconds * 1_000_000))

    def record_phase(self, phase: str, seconds: float) -> None:
        """Records the duration of one session's phase (one of :data:`PHASES`)."""
        histogram = self._phases.get(phase)
        if histogram is None:
            histogram = self._phases[phase] = LatencyHistogram()
        histogram.record(round(seconds * 1_000_000))

    def record_error(self, where: str, exc: BaseException | str) -> None:
        """Counts one failure of an operation or phase, by kind (see :func:`error_kind`)."""
        kind = exc if isinstance(exc, str) else error_kind(exc)
        self._errors[(where, kind)] += 1

    @property
    def has_errors(self) -> bool:
        """True when a failure was recorded since the last snapshot."""
        return bool(self._errors)

    def record_loop_lag(self, seconds: float) -> None:
        """Records how late the event loop ran a timer."""
        self._loop_lag.record(round(max(0.0, seconds) * 1_000_000))

    def snapshot(
        self,
        tick: int,
        *,
        cpu_seconds: float,
        rss_baseline: int = 0,
        rss_peak: int = 0,
        window_start: float | None = None,
        final: bool = False,
    ) -> Snapshot:
        """What was recorded since the previous snapshot, as tick number ``tick``."""
        snapshot = Snapshot(
            tick=tick,
            phases=self._phases,
            operations=self._operations,
            errors=self._errors,
            sessions=SessionCounts(**self.sessions.to_dict()),
            late=self.late,
            missed=self.missed,
            cpu_seconds=cpu_seconds,
            loop_lag=self._loop_lag,
            rss_baseline=rss_baseline,
            rss_peak=rss_peak,
            window_start=window_start,
            final=final,
        )
        self._phases, self._operations = {}, {}
        self._errors = Counter()
        self._loop_lag = LatencyHistogram()
        return snapshot


@define
class TimelineRow:
    """One tick of the whole run, every worker merged.

    Attributes:
        tick: the tick's number.
        end: seconds from the run's start to the tick's end.
        operations: latency histograms of the tick, by operation.
        errors: failures during the tick.
        sessions: cumulative session counts at the tick's end.
        cpu_percent: CPU used by the load processes during the tick, in percent of one core
            (two saturated workers give 200).
        max_worker_cpu_percent: the busiest worker's share.
        loop_lag_p99_ms: the worst worker's 99th percentile of event-loop lag.
    """

    tick: int
    end: float
    operations: dict[str, LatencyHistogram]
    errors: int
    sessions: SessionCounts
    cpu_percent: float
    max_worker_cpu_percent: float
    loop_lag_p99_ms: float

    def combined(self) -> LatencyHistogram:
        """Every operation's latencies of the tick in one histogram."""
        return merge_histograms(self.operations.values())

    @property
    def calls(self) -> int:
        return sum(h.count for h in self.operations.values())


class Aggregate:
    """The coordinator's view: every worker's snapshots merged into totals and a timeline.

    Args:
        workers: how many workers report, numbered from 0 (a tick is complete when each has
            sent it or has finished).
        interval: seconds per tick.
        rolling: how many recent ticks the rolling percentiles cover.
    """

    def __init__(self, workers: int, interval: float, rolling: int = 5) -> None:
        if workers < 1:
            raise ValueError(f"workers: expected at least 1, got {workers}")
        if interval <= 0:
            raise ValueError(f"interval: expected a positive number, got {interval}")
        self.workers = workers
        self.interval = interval
        self.phases: dict[str, LatencyHistogram] = {}
        self.operations: dict[str, LatencyHistogram] = {}
        self.errors: Counter[tuple[str, str]] = Counter()
        self.loop_lag = LatencyHistogram()
        self.timeline: list[TimelineRow] = []
        # By tick: each worker's snapshot and the CPU seconds it used during that tick.
        self._pending: dict[int, list[tuple[Snapshot, float]]] = {}
        self._latest: dict[int, Snapshot] = {}  # by worker: its cumulative counters
        self._finished: set[int] = set()
        self._recent: deque[LatencyHistogram] = deque(maxlen=rolling)

    # -- intake -------------------------------------------------------------------------------

    def add(self, worker: int, snapshot: Snapshot) -> list[TimelineRow]:
        """Merges one worker's snapshot.

        Returns:
            The timeline rows this snapshot completed (ticks every live worker has now sent).
        """
        for phase, histogram in snapshot.phases.items():
            self.phases.setdefault(phase, LatencyHistogram()).merge(histogram)
        for name, histogram in snapshot.operations.items():
            self.operations.setdefault(name, LatencyHistogram()).merge(histogram)
        self.errors.update(snapshot.errors)
        self.loop_lag.merge(snapshot.loop_lag)
        previous = self._latest.get(worker)
        cpu = snapshot.cpu_seconds - (previous.cpu_seconds if previous is not None else 0.0)
        self._pending.setdefault(snapshot.tick, []).append((snapshot, max(0.0, cpu)))
        self._latest[worker] = snapshot
        if snapshot.final:
            self._finished.add(worker)
        return self._complete_ticks()

    def finish(self, worker: int) -> list[TimelineRow]:
        """Marks a worker as finished without a final snapshot (its process died).

        Returns:
            The timeline rows that no longer wait for it.
        """
        self._finished.add(worker)
        return self._complete_ticks()

    def _complete_ticks(self) -> list[TimelineRow]:
        # A tick is complete once every worker has sent it or has finished before it.
        horizon = min(
            (
                math.inf if w in self._finished else (s.tick if (s := self._latest.get(w)) else -1)
                for w in range(self.workers)
            ),
            default=math.inf,
        )
        rows = []
        for tick in sorted(self._pending):
            if tick > horizon:
                break
            rows.append(self._row(tick, self._pending.pop(tick)))
        self.timeline.extend(rows)
        return rows

    def _row(self, tick: int, entries: list[tuple[Snapshot, float]]) -> TimelineRow:
        snapshots = [snapshot for snapshot, _ in entries]
        operations: dict[str, LatencyHistogram] = {}
        for snapshot in snapshots:
            for name, histogram in snapshot.operations.items():
                operations.setdefault(name, LatencyHistogram()).merge(histogram)
        cpu = [seconds / self.interval * 100 for _, seconds in entries]
        lag = max((s.loop_lag.percentile(99) for s in snapshots), default=0)
        row = TimelineRow(
            tick=tick,
            end=(tick + 1) * self.interval,
            operations=operations,
            errors=sum(sum(s.errors.values()) for s in snapshots),
            sessions=self.sessions,
            cpu_percent=round(sum(cpu), 1),
            max_worker_cpu_percent=round(max(cpu, default=0.0), 1),
            loop_lag_p99_ms=lag / 1000,
        )
        self._recent.append(row.combined())
        return row

    def flush(self) -> list[TimelineRow]:
        """Closes every pending tick (at the end of the run, or when a worker died)."""
        rows = [self._row(tick, self._pending.pop(tick)) for tick in sorted(self._pending)]
        self.timeline.extend(rows)
        return rows

    # -- reading ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once every worker has sent its final snapshot."""
        return len(self._finished) >= self.workers

    @property
    def sessions(self) -> SessionCounts:
        """The latest cumulative session counts, summed over workers."""
        total = SessionCounts()
        for snapshot in self._latest.values():
            total.add(snapshot.sessions)
        return total

    @property
    def late(self) -> int:
        return sum(s.late for s in self._latest.values())

    @property
    def missed(self) -> int:
        return sum(s.missed for s in self._latest.values())

    @property
    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds for s in self._latest.values())

    def window_starts(self) -> list[float]:
        """When each worker's load window opened (seconds from the start), where it did."""
        return [s.window_start for s in self._latest.values() if s.window_start is not None]

    def worker_memory(self) -> dict[int, tuple[int, int]]:
        """Each worker's (baseline, peak) resident memory in bytes, as last reported."""
        return {w: (s.rss_baseline, s.rss_peak) for w, s in self._latest.items()}

    def rolling(self) -> LatencyHistogram:
        """All operations' latencies over the last few complete ticks."""
        return merge_histograms(self._recent)

    def all_operations(self) -> LatencyHistogram:
        """Every operation's latencies of the whole run in one histogram."""
        return merge_histograms(self.operations.values())

    def errors_by(self, key: int) -> dict[str, int]:
        """Error counts by kind (``key=1``) or by where (``key=0``)."""
        counts: Counter[str] = Counter()
        for pair, n in self.errors.items():
            counts[pair[key]] += n
        return dict(counts.most_common())


def merge_histograms(histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
    """One histogram holding every value of ``histograms``."""
    total = LatencyHistogram()
    for histogram in histograms:
        total.merge(histogram)
    return total
