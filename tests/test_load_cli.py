"""``jamsocket-rt load`` end to end: real dev servers, backends and worker processes on loopback.

The assertions are about correctness (counts, files, verdicts, exit codes), never speed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jamsocket_rt.cli import main
from jamsocket_rt.load import FixedTarget, LoadConfig, run_load
from tests.helpers.paths import REPO_ROOT

CLI = [sys.executable, "-m", "jamsocket_rt", "load"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    return subprocess.run(
        [*CLI, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def report_of(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@contextlib.contextmanager
def dev_server() -> Iterator[str]:
    """A dev server with the example backend in its own process; yields its API URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jamsocket_rt.load._devserver"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["api_url"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # asks it to stop, terminating its backends
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connect(api_url: str, key: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{api_url}/v2/service/-/-/connect",
        data=json.dumps({"key": key}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        response: dict[str, Any] = json.load(answer)
    return response


@pytest.mark.slow
def test_default_run_writes_every_report(tmp_path: Path) -> None:
    done = run_cli(
        "--sessions",
        "12",
        "--duration",
        "3",
        "--rate",
        "5",
        "--json",
        str(tmp_path / "report.json"),
        "--csv",
        str(tmp_path / "run"),
        "--plot",
        str(tmp_path / "plot.png"),
        "--fail-if",
        "p99>10s",
        "--fail-if",
        "errors>0",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    report = report_of(tmp_path / "report.json")
    assert report["sessions"]["ready"] == 12
    assert report["sessions"]["failed"] == 0
    echo = report["operations"]["echo"]
    # 12 sessions, 5 calls a second each, for 3 s: never more than the schedule's slots (a
    # session ready late, on a busy machine, joins at its next slot and has fewer).
    assert 12 <= echo["count"] <= 12 * 5 * 3 + 12
    assert echo["errors"] == 0
    assert echo["p50_ms"] <= echo["p99_ms"] <= echo["max_ms"]
    assert set(report["phases"]) == {"connect_api", "ready", "socket_connect"}
    assert report["phases"]["connect_api"]["count"] == 12
    assert [t["failed"] for t in report["thresholds"]] == [False, False]
    assert report["resources"]["peak_rss_bytes"] > 0
    assert report["timeline"][0]["t"] == 1.0
    assert (tmp_path / "run_stats.csv").read_text().startswith("type,name,count")
    assert (tmp_path / "run_timeline.csv").read_text().startswith("t,sessions_ready")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Not a terminal: plain progress lines, one per tick.
    progress = [line for line in done.stderr.splitlines() if "ops/s" in line]
    assert len(progress) >= 3
    assert "\r" not in done.stderr
    assert "echo" in done.stdout
    assert "threshold p99>10s: ok" in done.stdout


def test_a_threshold_that_holds_fails_the_run(tmp_path: Path) -> None:
    done = run_cli(
        "--sessions",
        "3",
        "--iterations",
        "4",
        "--rate",
        "20",
        "--fail-if",
        "echo:p50>=0us",
        "--fail-if",
        "ping:p99>1ms",
        "--quiet",
    )
    assert done.returncode == 3, done.stderr
    assert "threshold echo:p50>=0us: FAILED" in done.stdout
    assert "threshold ping:p99>1ms: FAILED (measured no data)" in done.stdout
    assert "ops/s" not in done.stderr  # --quiet


@pytest.mark.slow
def test_ping_and_broadcast_in_worker_processes(tmp_path: Path) -> None:
    # Each on another event loop: uvloop (the default where installed, as in the dev extra)
    # and asyncio's own.
    for scenario, loop in (("ping", "auto"), ("broadcast", "asyncio")):
        path = tmp_path / f"{scenario}.json"
        done = run_cli(
            "--loop",
            loop,
            "--scenario",
            scenario,
            "--sessions",
            "6",
            "--keys",
            "2",
            "--processes",
            "2",
            "--iterations",
            "5",
            "--rate",
            "10",
            "--json",
            str(path),
            "--quiet",
        )
        assert done.returncode == 0, done.stderr
        report = report_of(path)
        assert report["sessions"]["ready"] == 6
        assert report["errors"]["total"] == 0, report["errors"]
        count = report["operations"][scenario]["count"]
        if scenario == "ping":
            assert count == 6 * 5  # one pong per ping, matched by sequence number
        else:
            # Each broadcast reaches every session of its backend (3 per key) that has
            # connected by then, its sender included.
            assert 6 * 5 <= count <= 2 * 3 * 3 * 5
        assert report["resources"]["processes"] == 2
        assert report["timeline"]
        # The report names the loop the run used, not the choice "auto".
        assert report["config"]["loop"] == ("uvloop" if loop == "auto" else loop)


@pytest.mark.slow
def test_user_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    done = run_cli(
        "--scenario",
        "examples/load_scenario.py",
        "--sessions",
        "4",
        "--keys",
        "new",
        "--iterations",
        "3",
        "--rate",
        "10",
        "--json",
        str(path),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    report = report_of(path)
    operations = report["operations"]
    assert operations["whoami"]["count"] == 4  # setup, once per session
    assert operations["echo"]["count"] == 12
    assert operations["ping-pong"]["count"] == 12
    assert report["errors"]["total"] == 0


@pytest.mark.slow
def test_failing_iterations_are_counted_by_kind(tmp_path: Path) -> None:
    scenario = tmp_path / "flaky.py"
    scenario.write_text(
        "async def scenario(session, user):\n"
        "    await user.call('echo', 1)\n"
        "    if user.iteration % 2:\n"
        "        raise KeyError('odd')\n"
        "    await user.call('sleep', 1.0, timeout=0.05, name='slow')\n"
    )
    path = tmp_path / "report.json"
    done = run_cli(
        "--scenario",
        str(scenario),
        "--sessions",
        "2",
        "--iterations",
        "4",
        "--rate",
        "0",
        "--json",
        str(path),
        "--fail-if",
        "errors>0",
        "--quiet",
    )
    assert done.returncode == 3, done.stderr
    report = report_of(path)
    detail = {(d["where"], d["kind"]): d["count"] for d in report["errors"]["detail"]}
    assert detail == {
        (f"{scenario}:scenario", "KeyError"): 4,
        ("slow", "TimeoutError"): 4,
    }
    assert report["operations"]["echo"]["count"] == 8
    assert "slow" not in report["operations"]  # nothing succeeded


@pytest.mark.slow
def test_fixed_response_and_jamsocket_env_targets(tmp_path: Path) -> None:
    with dev_server() as api_url:
        response = connect(api_url, "fixed")
        path = tmp_path / "fixed.json"
        done = run_cli(
            "--connect-response",
            json.dumps(response),
            "--sessions",
            "5",
            "--iterations",
            "3",
            "--rate",
            "20",
            "--json",
            str(path),
            "--quiet",
        )
        assert done.returncode == 0, done.stderr
        report = report_of(path)
        assert report["operations"]["echo"]["count"] == 15
        assert "connect_api" not in report["phases"]  # no platform API call at all
        assert report["config"]["target"] == {
            "kind": "fixed",
            "response": {"backend_id": response["backend_id"]},
        }

        port = api_url.rsplit(":", 1)[1]
        path = tmp_path / "env.json"
        done = run_cli(
            "--jamsocket",
            "--sessions",
            "3",
            "--iterations",
            "2",
            "--json",
            str(path),
            "--quiet",
            env={"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": port},
        )
        assert done.returncode == 0, done.stderr
        report = report_of(path)
        assert report["operations"]["echo"]["count"] == 6
        assert report["phases"]["connect_api"]["count"] == 3


@pytest.mark.slow
def test_running_out_of_file_descriptors_is_named(tmp_path: Path) -> None:
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    with dev_server() as api_url:
        response = connect(api_url, "fds")
        path = tmp_path / "report.json"
        done = subprocess.run(
            [
                *CLI,
                "--connect-response",
                json.dumps(response),
                "--sessions",
                "60",
                "--iterations",
                "1",
                "--ready-timeout",
                "10",
                "--json",
                str(path),
                "--quiet",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=low_limit,
        )
    assert done.returncode == 0, done.stderr
    assert "open-file limit is 48" in done.stderr
    report = report_of(path)
    assert report["sessions"]["failed"] > 0
    assert any("EMFILE" in kind for kind in report["errors"]["by_kind"]), report["errors"]
    assert any("EMFILE" in sentence for sentence in report["bottlenecks"])
    assert "bottleneck:" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "0"], "--sessions: expected a value at least 1"),
        (["--sessions", "ten"], "argument --sessions: expected an integer"),
        (["--duration", "-1"], "--duration: expected a value above 0"),
        (["--rate", "-2"], "--rate: expected a value at least 0"),
        (["--keys", "zero"], "argument --keys: expected 'new', 'shared'"),
        (["--think-time", "1-0"], "argument --think-time: MIN is above MAX"),
        (["--think-time", "1"], "--think-time: applies only with --rate 0"),
        (["--scenario", "nope"], "--scenario: expected one of echo, ping, broadcast"),
        (["--scenario", "missing.py"], "--scenario: no such file"),
        (["--transport", "carrier"], "--transport: expected websocket and/or polling"),
        (["--processes", "3", "--sessions", "2"], "--processes: 3 processes for 2 sessions"),
        (["--fail-if", "p99>>1"], "--fail-if: 'p99>>1': expected"),
        (["--connect-response", "{"], "--connect-response: not valid JSON"),
        (["--connect-response", "{}"], "--connect-response: invalid ConnectResponse"),
        (["--image", "x"], "--image: only with --plane"),
        (["--service", "x"], "--service: only with --jamsocket"),
        (["--json", "/no/such/dir/r.json"], "--json: the directory"),
        (["--scenario", "broadcast", "--keys", "new"], "--keys: the broadcast scenario"),
        (["--interval", "0"], "--interval: expected a value at least 0.05"),
    ],
)
def test_every_option_is_checked_by_name(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["load", *args])
    except SystemExit as exited:  # argparse's own checks exit
        code = int(exited.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_asking_for_uvloop_where_it_is_missing_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert main(["load", "--loop", "uvloop", "--sessions", "1", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "--loop: uvloop is not installed" in err
    assert "--loop asyncio" in err
    # auto falls back to asyncio's loop instead.
    from jamsocket_rt.load._loop import resolve_loop

    assert resolve_loop("auto") == "asyncio"


@pytest.mark.slow
async def test_in_place_progress_on_a_terminal() -> None:
    with dev_server() as api_url:
        response = await _in_thread(connect, api_url, "tty")
        stream = io.StringIO()
        config = LoadConfig(
            target=FixedTarget(response), sessions=2, duration=1.5, rate=10, interval=0.5
        )
        result = await run_load(config, progress=stream, tty=True)
    text = stream.getvalue()
    assert text.count("\r\x1b[2K") >= 3
    assert text.endswith("\n")
    assert result.report["operations"]["echo"]["count"] > 0
    # A caller's own loop (pytest's: asyncio) is named, not the default choice "auto".
    assert result.report["config"]["loop"] == "asyncio"


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_jamsocket_target_settings_are_checked_before_any_load() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JAMSOCKET_")}
    done = subprocess.run(
        [*CLI, "--jamsocket", "--sessions", "2", "--iterations", "1"],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--jamsocket: missing --account, --service, JAMSOCKET_TOKEN" in done.stderr
    done = subprocess.run(
        [*CLI, "--jamsocket", "--processes", "2", "--sessions", "2", "--iterations", "1"],
        cwd=REPO_ROOT,
        env={**clean, "JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": "70000"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "JAMSOCKET_DEV_PORT must be a port number" in done.stderr
    assert "Traceback" not in done.stderr
