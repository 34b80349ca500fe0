"""The final report of a load run, its files (JSON, CSV), the progress lines and the verdicts.

Everything here turns an :class:`~jamsocket_rt.load.stats.Aggregate` and a few facts about the
run into data or text; writing files is the only I/O, and the caller picks the paths.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field

from ._causes import MACHINE_ERRORS, cause_of, threshold_text
from .config import LoadConfig
from .histogram import DEFAULT_PERCENTILES, LatencyHistogram
from .stats import PHASES, Aggregate, TimelineRow
from .thresholds import Threshold

__all__ = [
    "RunFacts",
    "bottlenecks",
    "build_report",
    "evaluate_thresholds",
    "format_progress",
    "format_summary",
    "write_csv",
    "write_json",
]

#: A worker at or above this share of one core is what limits the load.
CPU_SATURATED_PERCENT = 90.0
#: Event-loop lag above this (99th percentile) inflates every latency measured.
LOOP_LAG_LIMIT_MS = 20.0

_MACHINE_ERRORS = MACHINE_ERRORS
#: Runs shorter than this get no CPU percentages in the summary (too few samples to mean much).
MIN_SECONDS_FOR_PERCENT = 1.0


@define
class RunFacts:
    """What the runner knows about the run besides the measurements.

    Attributes:
        started_at: wall-clock start, ISO 8601.
        elapsed: seconds from the start to the end of the last worker.
        steady_start: seconds from the start to the end of the ramp-up.
        steady_end: seconds from the start to the end of the load (None: iterations ended it).
        fd_limit: the open-file limit of each load process after raising it.
        fd_needed: the estimated descriptors each load process needs.
        cpu_count: CPUs of the machine.
        load_average: the highest 1-minute load average seen during the run.
        machine_cpu_percent: how busy the whole machine's CPUs were in the steady window
            (every process: backends and dev server included), in percent of all CPUs; None
            where unknown.
        worker_sessions: sessions per worker, by worker.
        notes: anything else the runner wants the reader to know.
    """

    started_at: str
    elapsed: float
    steady_start: float
    steady_end: float | None
    fd_limit: int
    fd_needed: int
    cpu_count: int
    load_average: float = 0.0
    machine_cpu_percent: float | None = None
    worker_sessions: dict[int, int] = field(factory=dict)
    notes: list[str] = field(factory=list)


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 3)


def _latency_summary(histogram: LatencyHistogram) -> dict[str, Any]:
    return histogram.summary(DEFAULT_PERCENTILES)


def _steady_rows(agg: Aggregate, facts: RunFacts) -> list[TimelineRow]:
    """Ticks wholly inside the steady window (after the ramp-up, before the end)."""
    end = facts.steady_end if facts.steady_end is not None else facts.elapsed
    return [
        row
        for row in agg.timeline
        if row.end - agg.interval >= facts.steady_start - 1e-9 and row.end <= end + 1e-9
    ]


def throughput(agg: Aggregate, facts: RunFacts, name: str | None = None) -> float:
    """Operations per second in the steady window (the whole run if it holds no full tick)."""
    rows = _steady_rows(agg, facts)

    def count(row: TimelineRow) -> int:
        if name is None:
            return row.calls
        histogram = row.operations.get(name)
        return histogram.count if histogram is not None else 0

    if rows:
        return sum(count(row) for row in rows) / (len(rows) * agg.interval)
    total = agg.operations.get(name) if name else agg.all_operations()
    seconds = max(facts.elapsed - facts.steady_start, facts.elapsed, 1e-9)
    return (total.count if total is not None else 0) / seconds


def bottlenecks(agg: Aggregate, facts: RunFacts) -> list[str]:
    """Plain sentences naming what on *this machine* limited the run, if anything did."""
    found = []
    rows = _steady_rows(agg, facts) or agg.timeline
    if rows:
        busiest = statistics.median(row.max_worker_cpu_percent for row in rows)
        load_saturated = busiest >= CPU_SATURATED_PERCENT
        if load_saturated:
            found.append(
                f"the load process used {busiest:.0f}% of a core (median per tick): it, not "
                "the backend, limits this load and its queueing is part of the latencies; "
                "use --processes (one per free core) or more machines (Locust workers)"
            )
        # Connecting sessions make the ramp-up busy: judge the steady state only.
        lag = statistics.median(row.loop_lag_p99_ms for row in rows)
        if lag > LOOP_LAG_LIMIT_MS:
            found.append(
                f"the load process's event loop ran timers {lag:.0f} ms late (p99, median per "
                "tick): latencies below that are not measurable here"
            )
    kinds = agg.errors_by(1)
    for kind, n in kinds.items():
        code = kind.rsplit(" ", 1)[-1]
        if code in _MACHINE_ERRORS:
            found.append(
                f"{n} failures with {code}: {_MACHINE_ERRORS[code]} is exhausted "
                f"(open-file limit {facts.fd_limit}, about {facts.fd_needed} needed)"
            )
    if facts.fd_limit < facts.fd_needed and not any("EMFILE" in k for k in kinds):
        found.append(
            f"the open-file limit ({facts.fd_limit}) is below the {facts.fd_needed} descriptors "
            "this run may need per process"
        )
    machine = facts.machine_cpu_percent
    if machine is not None and facts.cpu_count:
        if machine >= CPU_SATURATED_PERCENT:
            ours = 100 * agg.cpu_seconds / (max(facts.elapsed, 1e-9) * facts.cpu_count)
            found.append(
                f"the machine's {facts.cpu_count} CPUs were {machine:.0f}% busy (the load "
                f"processes about {min(ours, machine):.0f} of it, the rest the backends, the dev "
                "server and everything else): "
                + (
                    "the load and the backend competed for CPU; run them on separate machines"
                    if not load_saturated
                    else "nothing was left to add load with"
                )
            )
    elif facts.cpu_count and facts.load_average >= facts.cpu_count:
        found.append(
            f"the machine was fully busy (load average {facts.load_average:.1f} on "
            f"{facts.cpu_count} CPUs): a backend on this machine competed with the load"
        )
    return found


def evaluate_thresholds(
    thresholds: Sequence[Threshold], agg: Aggregate, facts: RunFacts
) -> list[dict[str, Any]]:
    """Each threshold with the measured value and whether it failed the run.

    A threshold about an operation or phase that never ran is reported with ``value`` None
    and fails (a check that cannot be made must not pass silently).
    """
    results = []
    for threshold in thresholds:
        value = _metric(threshold, agg, facts)
        failed = True if value is None else threshold.fails(value)
        results.append(
            {
                "threshold": threshold.text,
                "value": value,
                "failed": failed,
                # For the verdict's text: the metric in its canonical unit (ms, %, /s).
                "scope": threshold.scope,
                "metric": threshold.metric,
                "op": threshold.op,
                "limit": threshold.value,
            }
        )
    return results


def _metric(threshold: Threshold, agg: Aggregate, facts: RunFacts) -> float | None:
    scope, metric = threshold.scope, threshold.metric
    if metric == "failed_sessions":
        return float(agg.sessions.failed)
    if scope is None:
        histogram: LatencyHistogram | None = agg.all_operations()
        errors = sum(n for (where, _), n in agg.errors.items() if where not in PHASES)
    elif scope in PHASES:
        histogram = agg.phases.get(scope)
        errors = sum(n for (where, _), n in agg.errors.items() if where == scope)
    else:
        histogram = agg.operations.get(scope)
        errors = sum(n for (where, _), n in agg.errors.items() if where == scope)
    if metric == "errors":
        return float(errors)
    if histogram is None or histogram.count == 0:
        return None if threshold.is_latency or metric == "count" else 0.0
    if metric == "count":
        return float(histogram.count)
    if metric == "error_rate":
        return 100.0 * errors / (histogram.count + errors)
    if metric == "throughput":
        return throughput(agg, facts, scope)
    if metric == "mean":
        return histogram.mean / 1000
    if metric == "min":
        return histogram.min / 1000
    if metric == "max":
        return histogram.max / 1000
    percentile = threshold.percentile
    assert percentile is not None
    return histogram.percentile(percentile) / 1000


def build_report(config: LoadConfig, agg: Aggregate, facts: RunFacts) -> dict[str, Any]:
    """The final report as JSON-ready data (the layout is documented in the README)."""
    operations = {}
    for name in sorted(agg.operations):
        histogram = agg.operations[name]
        errors = sum(n for (where, _), n in agg.errors.items() if where == name)
        operations[name] = {
            **_latency_summary(histogram),
            "errors": errors,
            "throughput_per_s": round(throughput(agg, facts, name), 2),
        }
    phases = {name: _latency_summary(agg.phases[name]) for name in PHASES if name in agg.phases}
    sessions = agg.sessions
    memory = agg.worker_memory()
    peak = sum(p for _, p in memory.values())
    grown = sum(max(0, p - b) for b, p in memory.values())
    ready = max(1, sessions.ready)
    all_ops = agg.all_operations()
    report: dict[str, Any] = {
        "started_at": facts.started_at,
        "elapsed_s": round(facts.elapsed, 3),
        "steady_window_s": [
            round(facts.steady_start, 3),
            round(facts.steady_end if facts.steady_end is not None else facts.elapsed, 3),
        ],
        "config": config.describe(),
        "sessions": {**sessions.to_dict(), "requested": config.sessions},
        "phases": phases,
        "operations": operations,
        "all_operations": {
            **_latency_summary(all_ops),
            "throughput_per_s": round(throughput(agg, facts), 2),
        },
        "errors": {
            "total": sum(agg.errors.values()),
            "by_kind": agg.errors_by(1),
            "by_where": agg.errors_by(0),
            "detail": [
                {"where": where, "kind": kind, "count": n, "cause": cause_of(where, kind)}
                for (where, kind), n in agg.errors.most_common()
            ],
        },
        "pacing": {"late_starts": agg.late, "missed_slots": agg.missed},
        "resources": {
            "processes": config.processes,
            "cpu_seconds": round(agg.cpu_seconds, 2),
            "cpu_percent_of_one_core": round(
                100 * agg.cpu_seconds / facts.elapsed if facts.elapsed else 0.0, 1
            ),
            "machine_cpu_percent": (
                None if facts.machine_cpu_percent is None else round(facts.machine_cpu_percent, 1)
            ),
            "peak_rss_bytes": peak,
            "rss_growth_bytes": grown,
            "rss_per_session_bytes": round(grown / ready),
            "loop_lag_p99_ms": _ms(agg.loop_lag.percentile(99)),
            "open_file_limit": facts.fd_limit,
            "open_files_needed": facts.fd_needed,
            "cpu_count": facts.cpu_count,
            "max_load_average": round(facts.load_average, 2),
        },
        "bottlenecks": bottlenecks(agg, facts),
        "thresholds": evaluate_thresholds(config.thresholds, agg, facts),
        "notes": list(facts.notes),
        "timeline": [_timeline_entry(row) for row in agg.timeline],
    }
    return report


def _timeline_entry(row: TimelineRow) -> dict[str, Any]:
    combined = row.combined()
    p50, p95, p99 = combined.percentiles([50, 95, 99])
    return {
        "t": round(row.end, 3),
        "sessions_ready": row.sessions.ready,
        "sessions_active": row.sessions.active,
        "sessions_failed": row.sessions.failed,
        "operations": combined.count,
        "errors": row.errors,
        "p50_ms": _ms(p50),
        "p95_ms": _ms(p95),
        "p99_ms": _ms(p99),
        "max_ms": _ms(combined.max),
        "cpu_percent": row.cpu_percent,
        "loop_lag_p99_ms": row.loop_lag_p99_ms,
        "by_operation": {
            name: {
                "count": h.count,
                "p50_ms": _ms(h.percentile(50)),
                "p99_ms": _ms(h.percentile(99)),
            }
            for name, h in sorted(row.operations.items())
        },
    }


# -- files ------------------------------------------------------------------------------------


def write_json(report: Mapping[str, Any], path: str | Path) -> None:
    """Writes the report as indented JSON."""
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


_STATS_COLUMNS = ["type", "name", "count", "errors", "throughput_per_s", "min_ms", "mean_ms"]
_STATS_COLUMNS += [f"p{p:g}_ms" for p in DEFAULT_PERCENTILES] + ["max_ms"]
_TIMELINE_COLUMNS = [
    "t",
    "sessions_ready",
    "sessions_active",
    "sessions_failed",
    "operations",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "cpu_percent",
    "loop_lag_p99_ms",
]


def write_csv(report: Mapping[str, Any], prefix: str | Path) -> tuple[Path, Path]:
    """Writes ``PREFIX_stats.csv`` (one row per operation and phase) and ``PREFIX_timeline.csv``.

    Returns:
        The two paths.
    """
    stats_path = Path(f"{prefix}_stats.csv")
    timeline_path = Path(f"{prefix}_timeline.csv")
    with stats_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, _STATS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for name, summary in report["phases"].items():
            writer.writerow({"type": "phase", "name": name, "errors": "", **summary})
        for name, summary in report["operations"].items():
            writer.writerow({"type": "operation", "name": name, **summary})
        errors = report["errors"]["total"]
        writer.writerow({"type": "all", "name": "", "errors": errors, **report["all_operations"]})
    with timeline_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, _TIMELINE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(report["timeline"])
    return stats_path, timeline_path


# -- text -------------------------------------------------------------------------------------


def _fmt_ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.2f} ms"


def format_progress(agg: Aggregate, row: TimelineRow, rolling_ticks: int) -> str:
    """One progress line after a tick: sessions, calls per second, rolling percentiles, CPU."""
    s = row.sessions
    rolling = agg.rolling()
    p50, p95, p99 = rolling.percentiles([50, 95, 99])
    window = rolling_ticks * agg.interval
    rate = row.calls / agg.interval
    return (
        f"[{row.end:6.1f}s] sessions {s.active} ready, {s.connecting} connecting, "
        f"{s.failed} failed | {rate:,.0f} ops/s | p50 {_fmt_ms(p50 / 1000)} "
        f"p95 {_fmt_ms(p95 / 1000)} p99 {_fmt_ms(p99 / 1000)} (last {window:g} s) | "
        f"errors {sum(agg.errors.values())} | cpu {row.cpu_percent:.0f}%"
    )


def format_summary(report: Mapping[str, Any]) -> str:
    """The report as a short human-readable text (what the CLI prints at the end)."""
    lines = []
    s = report["sessions"]
    lines.append(
        f"sessions: {s['ready']} of {s['requested']} ready, {s['failed']} failed, "
        f"{s['disconnects']} disconnects, {s['reconnects']} reconnects "
        f"({report['elapsed_s']:.1f} s)"
    )
    header = f"{'':>16} {'count':>9} {'p50':>9} {'p90':>9} {'p95':>9} {'p99':>9} "
    header += f"{'p99.9':>9} {'max':>9} {'errors':>7} {'per s':>9}"
    lines.append(header)

    def row(label: str, summary: Mapping[str, Any], errors: Any = "", rate: Any = "") -> str:
        cells = [_fmt_ms(summary[f"p{p:g}_ms"]) for p in DEFAULT_PERCENTILES]
        rate_text = f"{rate:,.0f}" if isinstance(rate, (int, float)) else str(rate)
        return (
            f"{label[:16]:>16} {summary['count']:>9,} "
            + " ".join(f"{c:>9}" for c in cells)
            + f" {_fmt_ms(summary['max_ms']):>9} {errors!s:>7} {rate_text:>9}"
        )

    for name, summary in report["phases"].items():
        lines.append(row(name, summary))
    for name, summary in report["operations"].items():
        lines.append(row(name, summary, summary["errors"], summary["throughput_per_s"]))
    if len(report["operations"]) > 1:
        total = report["all_operations"]
        lines.append(row("all", total, report["errors"]["total"], total["throughput_per_s"]))
    for error in report["errors"]["detail"]:
        cause = error.get("cause")
        lines.append(
            f"error: {error['where']}: {error['kind']} x{error['count']}"
            + (f" ({cause})" if cause else "")
        )
    pacing = report["pacing"]
    if pacing["late_starts"] or pacing["missed_slots"]:
        lines.append(
            f"pacing: {pacing['late_starts']} iterations started late, "
            f"{pacing['missed_slots']} slots skipped (the sessions could not keep the rate)"
        )
    res = report["resources"]
    if report["elapsed_s"] >= MIN_SECONDS_FOR_PERCENT:
        cpu = f"{res['cpu_percent_of_one_core']:.0f}% of a core"
    else:  # a percentage of a few milliseconds says nothing
        cpu = f"{res['cpu_seconds']:.2f} s of CPU"
    if res.get("machine_cpu_percent") is not None:
        cpu += f" (machine: {res['machine_cpu_percent']:.0f}% of {res['cpu_count']} CPUs)"
    lines.append(
        f"load process: {cpu}, {report['config'].get('loop', 'asyncio')} loop lag p99 "
        f"{_fmt_ms(res['loop_lag_p99_ms'])}"
    )
    grown = res.get("rss_growth_bytes", 0)
    per_session = (
        f" ({res['rss_per_session_bytes'] / 1024:.1f} KiB per ready session)" if s["ready"] else ""
    )
    lines.append(
        f"memory: resident size grew {grown / 2**20:.1f} MiB over its size before the first "
        f"session{per_session}, peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    for sentence in report["bottlenecks"]:
        lines.append(f"bottleneck: {sentence}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    for result in report["thresholds"]:
        lines.append(threshold_text(result))
    return "\n".join(lines)


def nines(count: int = 200, top: float = 99.999) -> list[float]:
    """Percentiles spaced evenly on a log scale of 1/(1 - p): for distribution plots."""
    limit = math.log10(1 / (1 - top / 100))
    return [100 * (1 - 10 ** (-limit * i / (count - 1))) for i in range(count)]
