"""``jamsocket-rt load``: what a run measures and how it says it (issue 14, load testing).

The load window opens when the sessions are ready, sessions that never get ready fail the run,
a plain Socket.IO server can be loaded with ``--assume-ready``, and the summary names units,
causes, memory growth and the whole machine's CPU. Real dev servers and a real python-socketio
server on loopback; the pure parts are marked ``pure``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from jamsocket_rt.cli import main
from jamsocket_rt.load import _resources
from jamsocket_rt.load.config import LoadConfig, thresholds_from
from jamsocket_rt.load.report import bottlenecks, build_report, format_summary
from jamsocket_rt.load.stats import Aggregate, Recorder
from tests.helpers.net import free_port
from tests.helpers.transport_peers import TOKEN_PATH, python_peer
from tests.test_load_cli import report_of, run_cli
from tests.test_load_core import run_facts, snapshot


def fixed_response(origin: str, status_url: str) -> str:
    return json.dumps(
        {
            "backend_id": "plain",
            "spawned": False,
            "status": "ready",
            "token": "-",
            "url": origin + TOKEN_PATH.removesuffix("socket.io/"),
            "status_url": status_url,
        }
    )


# --------------------------------------------------------------------------- the load window


@pytest.mark.slow
def test_duration_is_time_under_load_not_spawn_time(tmp_path: Path) -> None:
    # A backend that takes 1.5 s to listen: before the fix, the load window opened at launch
    # and the spawn ate 1.5 of the 2 s (about 50 calls of 200 were made).
    backend = f"sleep 1.5; exec {sys.executable} -m jamsocket_rt.dev.example_backend"
    sessions, rate, duration = 20, 5, 2
    path = tmp_path / "report.json"
    done = run_cli(
        "--dev-backend",
        backend,
        "--sessions",
        str(sessions),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--json",
        str(path),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    report = report_of(path)
    assert report["sessions"]["ready"] == sessions
    planned = sessions * rate * duration
    count = report["operations"]["echo"]["count"]
    # Every slot of every session's window, save those a busy machine skipped (counted).
    assert count + report["pacing"]["missed_slots"] >= 0.95 * planned, report["pacing"]
    assert count <= planned  # the schedule has no more slots than that
    # The steady window opened once the backend was ready, not at launch.
    start, end = report["steady_window_s"]
    assert start >= 1.5
    assert end == pytest.approx(start + duration)


# --------------------------------------------------------------------------- failed runs


@pytest.mark.slow
def test_sessions_that_never_get_ready_fail_the_run(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "report.json"
    done = run_cli(
        "--connect-response",
        fixed_response(closed, f"{closed}/status"),
        "--sessions",
        "3",
        "--duration",
        "1",
        "--ready-timeout",
        "1",
        "--fail-if",
        "errors>0",
        "--json",
        str(path),
        "--quiet",
    )
    assert done.returncode == 4, done.stderr + done.stdout
    assert "0 of 3 ready, 3 failed" in done.stdout
    assert "error: ready: ReadyTimeout x3 (backend not ready within --ready-timeout)" in (
        done.stdout
    )
    assert "no session became ready (3 of 3 failed)" in done.stderr
    report = report_of(path)
    assert report["sessions"]["failed"] == 3
    assert report["errors"]["detail"] == [
        {
            "where": "ready",
            "kind": "ReadyTimeout",
            "count": 3,
            "cause": "backend not ready within --ready-timeout",
        }
    ]
    assert "KiB per ready session" not in done.stdout  # none was ready


@pytest.mark.slow
def test_sessions_still_connecting_at_the_end_count_as_failed(tmp_path: Path) -> None:
    # A server that accepts TCP connections and never answers: the handshake outlasts the run.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        origin = f"http://127.0.0.1:{silent.getsockname()[1]}"
        path = tmp_path / "report.json"
        done = run_cli(
            "--connect-response",
            fixed_response(origin, f"{origin}/status"),
            "--assume-ready",
            "--sessions",
            "2",
            "--duration",
            "1",
            "--ready-timeout",
            "1",
            "--call-timeout",
            "1",
            "--json",
            str(path),
            "--quiet",
        )
    assert done.returncode == 4, done.stderr + done.stdout
    assert "0 of 2 ready, 2 failed" in done.stdout
    assert "error: socket_connect: NotReady x2 (still not ready when the run ended)" in (
        done.stdout
    )
    assert report_of(path)["sessions"]["failed"] == 2


# --------------------------------------------------------------------------- plain Socket.IO


@pytest.mark.slow
def test_assume_ready_loads_a_plain_socketio_server(tmp_path: Path) -> None:
    with python_peer() as origin:
        # No status service there: status_url is required but never read.
        response = fixed_response(origin, f"{origin}/no-status-here")
        path = tmp_path / "report.json"
        done = run_cli(
            "--connect-response",
            response,
            "--assume-ready",
            "--sessions",
            "4",
            "--iterations",
            "3",
            "--rate",
            "20",
            "--json",
            str(path),
        )
        assert done.returncode == 0, done.stderr + done.stdout
        report = report_of(path)
        assert report["sessions"]["ready"] == 4
        assert report["operations"]["echo"]["count"] == 12
        assert report["errors"]["total"] == 0
        assert report["phases"]["ready"]["count"] == 4
        assert report["config"]["assume_ready"] is True
        # A run this short gets CPU seconds, not a percentage of a few milliseconds; and they
        # are the run's own (before the fix they held the interpreter's start-up too).
        resources = report["resources"]
        if report["elapsed_s"] < 1:
            assert "s of CPU" in done.stdout
        assert not re.search(r"\d{4,}% of a core", done.stdout), done.stdout
        assert resources["cpu_seconds"] <= report["elapsed_s"] * (os.cpu_count() or 1) + 0.05
        assert "memory: resident size grew" in done.stdout
        assert "KiB per ready session), peak RSS" in done.stdout

        # Without it, the session waits for a status that never comes, and the run fails.
        done = run_cli(
            "--connect-response",
            response,
            "--sessions",
            "1",
            "--iterations",
            "1",
            "--ready-timeout",
            "1",
            "--quiet",
        )
        assert done.returncode == 4, done.stderr + done.stdout


def test_assume_ready_needs_a_connect_response(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--assume-ready", "--sessions", "1", "--iterations", "1"]) == 2
    assert "--assume-ready: only with --connect-response" in capsys.readouterr().err


def test_help_shows_a_plain_socketio_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["load", "--help"])
    out = capsys.readouterr().out
    assert "--assume-ready --connect-response" in out
    assert "--duration is the time under load" in out
    assert "4 when no\nsession became ready" in out


# --------------------------------------------------------------------------- the summary


@pytest.mark.pure
def test_summary_names_units_events_and_causes() -> None:
    recorder = Recorder()
    recorder.sessions.started = recorder.sessions.ready = 4
    agg = Aggregate(workers=1, interval=1.0)
    for tick in range(4):
        for _ in range(100):
            recorder.record("add", 0.002)
        for _ in range(3):
            recorder.record_error("add", TimeoutError("no acknowledgement within 10 s"))
        agg.add(0, snapshot(recorder, tick, cpu=0.1 * (tick + 1), final=tick == 3))
    config = LoadConfig(
        sessions=4,
        thresholds=thresholds_from(["p99>50ms", "add:mean>1ms", "throughput<1000", "errors>0"]),
    )
    text = format_summary(build_report(config, agg, run_facts()))
    assert "error: add: TimeoutError x12 (no acknowledgement in time)" in text
    p99 = re.search(r"threshold p99>50ms: ok \(p99 ([\d.]+) ms <= 50 ms\)", text)
    assert p99 is not None, text
    assert 1.9 <= float(p99.group(1)) <= 2.1
    assert re.search(r"threshold add:mean>1ms: FAILED \(add:mean [\d.]+ ms > 1 ms\)", text)
    assert "threshold throughput<1000: FAILED (throughput 100/s < 1,000/s)" in text
    assert "threshold errors>0: FAILED (errors 12 > 0)" in text
    assert "memory: resident size grew 0.0 MiB over its size before the first session" in text
    assert "% of a core" in text  # a 4 s run: percentages


@pytest.mark.pure
def test_short_runs_get_cpu_seconds_not_percentages() -> None:
    recorder = Recorder()
    recorder.sessions.started = recorder.sessions.ready = 1
    recorder.record("echo", 0.001)
    agg = Aggregate(workers=1, interval=1.0)
    agg.add(0, snapshot(recorder, 0, cpu=0.4, final=True))
    facts = run_facts(elapsed=0.02, steady_start=0.0, steady_end=None)
    text = format_summary(build_report(LoadConfig(sessions=1), agg, facts))
    assert "load process: 0.40 s of CPU," in text
    assert "% of a core" not in text


@pytest.mark.pure
def test_a_busy_machine_is_named_even_when_the_load_process_is_idle() -> None:
    recorder = Recorder()
    agg = Aggregate(workers=1, interval=1.0)
    for tick in range(4):
        recorder.record("echo", 0.001)
        agg.add(0, snapshot(recorder, tick, cpu=0.1 * (tick + 1)))
    found = " | ".join(bottlenecks(agg, run_facts(machine_cpu_percent=97.0)))
    assert "the machine's 2 CPUs were 97% busy (the load processes about 5 of it" in found
    assert "the load and the backend competed for CPU" in found
    assert "load average" not in found  # the CPU reading says more
    assert bottlenecks(agg, run_facts(machine_cpu_percent=30.0)) == []


def test_whole_machine_cpu_is_read() -> None:
    first = _resources.machine_cpu()
    if first is None:
        pytest.skip("no /proc/stat on this system")
    sum(i * i for i in range(200_000))  # some CPU time, so the counters move
    second = _resources.machine_cpu()
    assert second is not None
    share = _resources.machine_cpu_percent(first, second)
    assert share is None or 0.0 <= share <= 100.0
    assert second[1] >= first[1]


@pytest.mark.pure
def test_error_causes_by_kind_and_where() -> None:
    from jamsocket_rt.load._causes import cause_of

    assert cause_of("connect_api", "ApiError 429") == "the platform API answered HTTP 429"
    assert cause_of("echo", "ConnectionError EMFILE") == (
        "the open-file limit of the load process is exhausted"
    )
    assert cause_of("socket_connect", "ConnectionError ECONNREFUSED") == "connection refused"
    assert cause_of("ping", "TimeoutError") == "no pong in time"
    assert cause_of("socket_connect", "TimeoutError") == "the Socket.IO handshake took too long"
    assert cause_of("ready", "NotReady") == "still not ready when the run ended"
    assert cause_of("my.py:scenario", "KeyError") is None  # user code: the kind says it all
