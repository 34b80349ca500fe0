"""The load runner's sans-I/O core: histogram, pacing, thresholds, aggregation, report, config."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsocket_rt.load import (
    DevTarget,
    FixedTarget,
    LatencyHistogram,
    LoadConfig,
    Pacer,
    even_phase,
    parse_threshold,
    van_der_corput,
)
from jamsocket_rt.load.config import parse_keys, parse_think_time, thresholds_from
from jamsocket_rt.load.report import (
    RunFacts,
    bottlenecks,
    build_report,
    format_summary,
    write_csv,
    write_json,
)
from jamsocket_rt.load.stats import Aggregate, Recorder, Snapshot, error_kind

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure

# --------------------------------------------------------------------------- histogram


def exact_percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=300))
def test_percentiles_are_within_the_bucket_precision(values: list[int]) -> None:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    for p in (0, 1, 50, 90, 99, 99.9, 100):
        exact = exact_percentile(values, p)
        got = histogram.percentile(p)
        # Never below the truth, and at most one bucket (1/256 of the value) above it.
        assert exact <= got <= max(exact, exact + exact // 256), (p, exact, got)
    assert histogram.count == len(values)
    assert histogram.min == min(values)
    assert histogram.max == max(values)
    assert histogram.mean == pytest.approx(sum(values) / len(values))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**8), max_size=100),
    st.lists(st.integers(min_value=0, max_value=10**8), max_size=100),
)
def test_merging_equals_recording_everything_in_one(a: list[int], b: list[int]) -> None:
    one, two, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for value in a:
        one.record(value)
        both.record(value)
    for value in b:
        two.record(value)
        both.record(value)
    one.merge(two)
    assert one.to_dict() == both.to_dict()
    assert LatencyHistogram.from_dict(json.loads(json.dumps(one.to_dict()))).to_dict() == (
        both.to_dict()
    )


def test_histogram_edges() -> None:
    histogram = LatencyHistogram()
    assert histogram.percentiles([50, 99]) == [0, 0]
    assert histogram.summary()["count"] == 0
    histogram.record(-5)  # a clock step backwards counts as 0
    histogram.record(10**15)  # beyond the last bucket: counted there, max exact
    assert histogram.min == 0
    assert histogram.max == 10**15
    assert histogram.percentile(100) == 10**15
    histogram.record_seconds(0.0015)
    assert 1500 <= histogram.percentile(50) <= 1500 + 1500 // 256
    summary = histogram.summary()
    assert set(summary) >= {"count", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms"}
    histogram.clear()
    assert histogram.count == 0


def test_histogram_memory_is_fixed() -> None:
    histogram = LatencyHistogram()
    size = len(histogram.to_dict()["buckets"])
    for value in range(0, 10**7, 997):
        histogram.record(value)
    assert size == 0
    assert len(histogram._counts) == len(LatencyHistogram()._counts)


def test_histogram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="precision_bits"):
        LatencyHistogram(0)
    with pytest.raises(ValueError, match="merge"):
        LatencyHistogram(8).merge(LatencyHistogram(7))
    with pytest.raises(ValueError, match="percentile"):
        LatencyHistogram().percentile(101)
    with pytest.raises(ValueError, match="not a histogram"):
        LatencyHistogram.from_dict({"precision_bits": 8})
    bad = LatencyHistogram().to_dict() | {"count": 3}
    with pytest.raises(ValueError, match="add up"):
        LatencyHistogram.from_dict(bad)
    with pytest.raises(ValueError, match="bucket"):
        LatencyHistogram.from_dict(bad | {"buckets": [[10**9, 3]]})


# --------------------------------------------------------------------------- pacing


def test_even_phases_spread_sessions_over_the_period() -> None:
    n = 500
    period = 1.0
    anchor = 100.0
    pacers = [Pacer(period=period, anchor=anchor, phase=even_phase(i, n)) for i in range(n)]
    starts = sorted(p.next_start(anchor) for p in pacers)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(period / n)
    assert max(gaps) == pytest.approx(period / n)
    # No 50 ms slot holds more than its fair share (the Locust constant_pacing symptom).
    slots = [0] * 20
    for start in starts:
        slots[int((start - anchor) / 0.05 + 1e-9) % 20] += 1
    assert max(slots) == n // 20


def test_schedule_is_absolute_no_drift() -> None:
    pacer = Pacer(period=0.1, anchor=0.0, phase=0.5)
    now = 0.0
    starts = []
    for _ in range(1000):
        start = pacer.next_start(now)
        starts.append(start)
        now = start + 0.0371  # each iteration takes a while: the slots do not move
    assert starts[0] == pytest.approx(0.05)
    assert starts[-1] == pytest.approx(0.05 + 999 * 0.1)
    assert pacer.late == pacer.missed == 0


def test_late_and_missed_slots() -> None:
    pacer = Pacer(period=1.0, anchor=0.0)
    assert pacer.next_start(0.2) == 1.0  # first: the next slot at or after now
    assert pacer.next_start(1.5) == 2.0  # on time
    assert pacer.next_start(2.5) == 3.0
    assert pacer.next_start(3.4) == 4.0
    assert pacer.next_start(4.5) == 5.0
    assert pacer.next_start(5.5) == 6.0
    # The iteration of slot 6 ran until 6.5 + 1: slot 7 starts late, at once.
    assert pacer.next_start(7.5) == 7.5
    assert (pacer.late, pacer.missed) == (1, 0)
    # It ran until 10.2: slots 8 and 9 are gone; slot 10 starts late.
    assert pacer.next_start(10.2) == 10.2
    assert (pacer.late, pacer.missed) == (2, 2)
    assert pacer.next_start(10.3) == 11.0


def test_van_der_corput_keeps_any_number_of_users_spread() -> None:
    assert [van_der_corput(i) for i in range(5)] == [0, 0.5, 0.25, 0.75, 0.125]
    for n in (3, 7, 100, 333):
        phases = sorted(van_der_corput(i) for i in range(n))
        gaps = [b - a for a, b in zip(phases, [*phases[1:], 1.0], strict=True)]
        assert max(gaps) <= 2 / n + 1e-12


def test_pacing_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="period"):
        Pacer(period=0, anchor=0)
    with pytest.raises(ValueError, match="phase"):
        Pacer(period=1, anchor=0, phase=1.0)
    with pytest.raises(ValueError, match="even_phase"):
        even_phase(3, 3)
    with pytest.raises(ValueError, match="van_der_corput"):
        van_der_corput(-1)


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("text", "scope", "metric", "op", "value"),
    [
        ("p99>50ms", None, "p99", ">", 50.0),
        ("p99 > 50", None, "p99", ">", 50.0),
        ("echo:p99.9>=0.2s", "echo", "p99.9", ">=", 200.0),
        ("max<500us", None, "max", "<", 0.5),
        ("errors>0", None, "errors", ">", 0.0),
        ("error_rate>1.5%", None, "error_rate", ">", 1.5),
        ("throughput<1000/s", None, "throughput", "<", 1000.0),
        ("connect_api:p95>1s", "connect_api", "p95", ">", 1000.0),
        ("failed_sessions!=0", None, "failed_sessions", "!=", 0.0),
    ],
)
def test_thresholds_parse(text: str, scope: str | None, metric: str, op: str, value: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.scope, threshold.metric, threshold.op) == (scope, metric, op)
    assert threshold.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99", "expected"),
        ("p99>>5", "expected"),
        ("p101>5ms", "between 0 and 100"),
        ("p99>5min", "unit"),
        ("latency>5", "unknown metric"),
        ("errors>5ms", "no unit"),
        ("error_rate>5ms", "percent"),
        ("throughput>5ms", "per second"),
        ("echo:failed_sessions>0", "no scope"),
    ],
)
def test_thresholds_reject(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_threshold(text)
    with pytest.raises(ValueError, match=r"^--fail-if: "):
        thresholds_from([text])


# --------------------------------------------------------------------------- config


def test_config_names_the_option_in_every_error() -> None:
    cases = {
        "--sessions": {"sessions": 0},
        "--duration": {"duration": -1},
        "--iterations": {"iterations": 0},
        "--rate": {"rate": -1},
        "--in-flight": {"in_flight": 0},
        "--think-time": {"rate": 1.0, "think_time": (0.5, 1.0)},
        "--scenario": {"scenario": "nope"},
        "--payload-size": {"payload_size": -1},
        "--call-timeout": {"call_timeout": 0},
        "--ready-timeout": {"ready_timeout": math.inf},
        "--transport": {"transports": ("carrier-pigeon",)},
        "--processes": {"processes": 20, "sessions": 10},
        "--interval": {"interval": 0},
        "--keys": {"keys": 0},
        "--key-prefix": {"key_prefix": ""},
        "--ramp-up": {"ramp_up": -1},
    }
    for option, fields in cases.items():
        with pytest.raises(ValueError, match=rf"^{option}: "):
            LoadConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^--duration: give"):
        LoadConfig(duration=None, iterations=None)
    with pytest.raises(ValueError, match=r"^--keys: the broadcast"):
        LoadConfig(scenario="broadcast", keys="new")
    with pytest.raises(ValueError, match=r"^--keys: a fixed"):
        LoadConfig(target=FixedTarget({}), keys=3)


def test_config_parsers_and_round_trip() -> None:
    assert parse_keys("new") == "new"
    assert parse_keys(" Shared ") == "shared"
    assert parse_keys("4") == 4
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError, match=r"^--keys"):
            parse_keys(bad)
    assert parse_think_time("0.5") == (0.5, 0.5)
    assert parse_think_time("0.5-2") == (0.5, 2.0)
    for bad in ("x", "2-1", "1-2-3", "nan"):
        with pytest.raises(ValueError, match=r"^--think-time"):
            parse_think_time(bad)
    config = LoadConfig(
        target=DevTarget("node backend.js"),
        sessions=7,
        keys=3,
        rate=0,
        think_time=(0.1, 0.2),
        thresholds=thresholds_from(["p99>5ms"]),
        scenario="examples/load_scenario.py:scenario",
    )
    assert LoadConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert [config.key_for(i) for i in range(4)] == [
        "jrt-load-0",
        "jrt-load-1",
        "jrt-load-2",
        "jrt-load-0",
    ]
    assert config.scenario_path == "examples/load_scenario.py"
    assert LoadConfig(sessions=11, ramp_up=5).ramp_seconds == 2.0


# --------------------------------------------------------------------------- stats and report


def snapshot(recorder: Recorder, tick: int, cpu: float, final: bool = False) -> Snapshot:
    # Through JSON, as from a worker process.
    made = recorder.snapshot(tick, cpu_seconds=cpu, rss_baseline=1000, rss_peak=5000, final=final)
    return Snapshot.from_dict(json.loads(json.dumps(made.to_dict())))


def test_aggregate_merges_workers_tick_by_tick() -> None:
    agg = Aggregate(workers=2, interval=1.0)
    a, b = Recorder(), Recorder()
    a.sessions.started = a.sessions.ready = 2
    b.sessions.started, b.sessions.failed = 1, 1
    a.record_phase("connect_api", 0.010)
    a.record("echo", 0.001)
    a.record("echo", 0.003)
    b.record("echo", 0.002)
    b.record_error("echo", TimeoutError())
    assert agg.add(0, snapshot(a, 0, cpu=0.5)) == []  # worker 1 has not sent tick 0
    rows = agg.add(1, snapshot(b, 0, cpu=0.9))
    assert [row.tick for row in rows] == [0]
    assert rows[0].calls == 3
    assert rows[0].cpu_percent == pytest.approx(140.0)
    assert rows[0].max_worker_cpu_percent == pytest.approx(90.0)
    assert agg.sessions.ready == 2
    assert agg.sessions.failed == 1
    # Worker 1 finishes at tick 1; worker 0 goes on alone.
    assert agg.add(1, snapshot(b, 1, cpu=1.0, final=True)) == []
    a.record("echo", 0.004)
    assert [r.tick for r in agg.add(0, snapshot(a, 1, cpu=1.0))] == [1]
    assert [r.tick for r in agg.add(0, snapshot(a, 2, cpu=1.5))] == [2]
    agg.add(0, snapshot(a, 3, cpu=1.6, final=True))
    assert agg.done
    assert agg.operations["echo"].count == 4
    assert agg.errors_by(1) == {"TimeoutError": 1}
    assert agg.worker_memory() == {0: (1000, 5000), 1: (1000, 5000)}


def test_a_dead_worker_releases_the_ticks() -> None:
    agg = Aggregate(workers=2, interval=1.0)
    a = Recorder()
    agg.add(0, snapshot(a, 0, cpu=0.1))
    agg.add(0, snapshot(a, 1, cpu=0.2))
    assert agg.timeline == []
    assert [row.tick for row in agg.finish(1)] == [0, 1]


def test_error_kinds() -> None:
    import errno

    from jamsocket_rt import ApiError

    assert error_kind(TimeoutError()) == "TimeoutError"
    assert error_kind(OSError(errno.EMFILE, "Too many open files")) == "OSError EMFILE"
    wrapped = ConnectionError("cannot connect to 127.0.0.1")
    wrapped.__context__ = OSError(errno.EADDRNOTAVAIL, "no port")  # as `raise ... from None`
    wrapped.__suppress_context__ = True
    assert error_kind(wrapped) == "ConnectionError EADDRNOTAVAIL"
    api_error = ApiError(429, "slow down", code="RateLimited")
    assert error_kind(api_error) == "ApiError 429"


def run_facts(**changes: object) -> RunFacts:
    facts = RunFacts(
        started_at="2026-01-01T00:00:00+00:00",
        elapsed=4.0,
        steady_start=1.0,
        steady_end=4.0,
        fd_limit=1024,
        fd_needed=100,
        cpu_count=2,
    )
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def test_report_files_and_thresholds(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.sessions.started = recorder.sessions.ready = 10
    agg = Aggregate(workers=1, interval=1.0)
    for tick in range(4):
        for i in range(100):
            recorder.record("echo", 0.001 + i * 0.0001)
        recorder.record_phase("ready", 0.2)
        agg.add(0, snapshot(recorder, tick, cpu=0.2 * (tick + 1), final=tick == 3))
    config = LoadConfig(
        sessions=10,
        thresholds=thresholds_from(
            ["p99>50ms", "echo:p50>1ms", "errors>0", "throughput<50", "ping:p99>1ms"]
        ),
    )
    report = build_report(config, agg, run_facts())
    verdicts = {t["threshold"]: t["failed"] for t in report["thresholds"]}
    assert verdicts == {
        "p99>50ms": False,
        "echo:p50>1ms": True,
        "errors>0": False,
        "throughput<50": False,
        "ping:p99>1ms": True,  # never measured: cannot pass
    }
    echo = report["operations"]["echo"]
    assert echo["count"] == 400
    assert echo["throughput_per_s"] == 100.0
    assert echo["p50_ms"] == pytest.approx(5.9, rel=0.01)
    assert report["bottlenecks"] == []
    assert len(report["timeline"]) == 4
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["sessions"]["ready"] == 10
    stats, timeline = write_csv(report, tmp_path / "r")
    rows = list(csv.DictReader(stats.open()))
    assert [(r["type"], r["name"]) for r in rows] == [
        ("phase", "ready"),
        ("operation", "echo"),
        ("all", ""),
    ]
    assert len(list(csv.DictReader(timeline.open()))) == 4
    text = format_summary(report)
    assert "echo:p50>1ms: FAILED" in text
    assert "p99.9" in text


def test_bottlenecks_name_the_machine() -> None:
    recorder = Recorder()
    agg = Aggregate(workers=1, interval=1.0)
    for tick in range(4):
        recorder.record("echo", 0.001)
        recorder.record_loop_lag(0.050)
        if tick == 2:
            recorder.record_error("connect_api", OSError(24, "Too many open files"))
        agg.add(0, snapshot(recorder, tick, cpu=0.97 * (tick + 1)))
    found = " | ".join(bottlenecks(agg, run_facts(load_average=3.0)))
    assert "97% of a core" in found
    assert "--processes" in found
    assert "50 ms late" in found
    assert "EMFILE" in found
    assert "load average 3.0" in found
