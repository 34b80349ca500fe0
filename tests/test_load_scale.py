"""Thousands of sessions in one process (issue 15): what stops a large run is named, and the
end of a run does not disturb its last calls.

Real python-socketio servers on loopback and ``jamsocket-rt load`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

from jamsocket_rt.load import _resources
from tests.helpers.paths import REPO_ROOT
from tests.helpers.transport_peers import TOKEN_PATH as PATH
from tests.test_load_cli import CLI, report_of
from tests.test_load_reports import fixed_response


@contextlib.contextmanager
def timing_peer() -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """A python-socketio server (in a thread of its own) that notes when each ``echo`` arrives
    and when each client goes away; yields its origin and those ``(kind, time)`` notes."""
    notes: list[tuple[str, float]] = []
    started: queue.Queue[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def serve() -> None:
        sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)

        async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
            notes.append(("echo", time.monotonic()))
            return args

        async def disconnect(sid: str, *reason: Any) -> None:
            notes.append(("disconnect", time.monotonic()))

        sio.on("echo", echo)
        sio.on("disconnect", disconnect)
        app = web.Application()
        sio.attach(app, socketio_path=PATH)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        stop = asyncio.Event()
        started.put((f"http://{host}:{port}", asyncio.get_running_loop(), stop))
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    origin, loop, stop = started.get(timeout=10)
    try:
        yield origin, notes
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def load_plain_server(
    origin: str, tmp_path: Path, *args: str, preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``jamsocket-rt load --assume-ready`` against the server at ``origin``, its report in
    ``tmp_path / "report.json"``."""
    response = fixed_response(origin, f"{origin}/no-status-here")
    report = str(tmp_path / "report.json")
    return subprocess.run(
        [
            *CLI,
            "--connect-response",
            response,
            "--assume-ready",
            *args,
            "--json",
            report,
            "--quiet",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec_fn,
    )


@pytest.mark.slow
@pytest.mark.parametrize("end", [["--iterations", "4"], ["--duration", "0.6"]])
def test_no_session_closes_while_others_still_call(end: list[str], tmp_path: Path) -> None:
    # Sessions paced 100 ms apart finish at different moments. They used to close as they
    # finished, so the close storm of thousands of sessions ran during the last calls of the
    # others (at 10,000 sessions, it made the run's p99 200 ms instead of 10).
    with timing_peer() as (origin, notes):
        done = load_plain_server(origin, tmp_path, "--sessions", "8", "--rate", "10", *end)
        assert done.returncode == 0, done.stderr + done.stdout
        deadline = time.monotonic() + 5
        while sum(kind == "disconnect" for kind, _ in notes) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    report = report_of(tmp_path / "report.json")
    assert report["sessions"]["ready"] == 8
    assert report["errors"]["total"] == 0
    calls = [at for kind, at in notes if kind == "echo"]
    gone = [at for kind, at in notes if kind == "disconnect"]
    assert len(calls) == report["operations"]["echo"]["count"] >= 8
    assert len(gone) == 8
    assert min(gone) > max(calls)


@pytest.mark.slow
def test_the_open_file_limit_is_raised_to_what_the_run_needs(tmp_path: Path) -> None:
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 4096))

    with timing_peer() as (origin, _):
        done = load_plain_server(
            origin, tmp_path, "--sessions", "60", "--iterations", "1", preexec_fn=low_soft_limit
        )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "open-file limit" not in done.stderr
    report = report_of(tmp_path / "report.json")
    assert report["sessions"]["ready"] == 60
    assert report["errors"]["total"] == 0


@pytest.mark.pure
def test_a_hard_limit_too_low_is_named_with_its_remedies() -> None:
    advice = _resources.fd_limit_advice(soft=1024, hard=1024, needed=10_065, sessions=10_000)
    assert "open-file limit is 1024" in advice
    assert "RLIMIT_NOFILE" in advice
    assert "hard limit 1024" in advice
    assert "ulimit -Hn 10065" in advice
    assert "LimitNOFILE=10065" in advice
    assert "/etc/security/limits.conf" in advice
    # 1024 - 65 fixed descriptors leave room for 959 sessions a process: 11 processes.
    assert "--processes 11" in advice


CONNECTIONS_PAST_THE_LIMIT = """
import asyncio, json, resource, sys
from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.websocket import WebSocketTransport

class Listener:
    def transport_event(self, event, args, ack): pass
    def transport_lost(self, error): pass

async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, hard))
    transports = []
    try:
        for _ in range(60):
            transport = WebSocketTransport()
            await transport.connect(
                ConnectTarget(sys.argv[1], socketio_path=sys.argv[2], connect_timeout=5.0),
                Listener(),
            )
            transports.append(transport)
    except ConnectionError as exc:
        print(json.dumps({"error": str(exc), "opened": len(transports)}))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)

asyncio.run(main())
"""


@pytest.mark.slow
def test_a_connection_past_the_open_file_limit_says_which_limit() -> None:
    with timing_peer() as (origin, _):
        done = subprocess.run(
            [sys.executable, "-c", CONNECTIONS_PAST_THE_LIMIT, origin, PATH],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["opened"] > 0
    assert "Too many open files" in result["error"]
    assert "RLIMIT_NOFILE" in result["error"]
    assert "ulimit -n" in result["error"]


@pytest.mark.pure
def test_the_flag_that_replaced_an_event_per_session_behaves_like_one() -> None:
    # A Session waits for its backend's status with a Flag: an asyncio.Event costs 760 bytes
    # (its deque of waiters), 7 MiB at 10,000 sessions.
    from jamsocket_rt.asyncio._util import Flag

    async def main() -> None:
        flag = Flag()
        assert not flag.is_set()
        first = asyncio.ensure_future(flag.wait())
        second = asyncio.ensure_future(flag.wait())
        await asyncio.sleep(0)
        first.cancel()  # one waiter given up (a timeout) does not end the other's wait
        await asyncio.sleep(0)
        assert not second.done()
        flag.set()
        await asyncio.wait_for(second, 1)
        assert flag.is_set()
        await asyncio.wait_for(flag.wait(), 1)  # set: returns at once
        flag.clear()
        third = asyncio.ensure_future(flag.wait())
        await asyncio.sleep(0)
        assert not third.done()
        flag.set()
        await asyncio.wait_for(third, 1)

    asyncio.run(main())
    assert Flag.__slots__ == ("_is_set", "_waiter")


GC_SCENARIO = """
import gc

SEEN = {"connecting": set(), "loading": set(), "frozen": set()}


async def setup(session, user):
    SEEN["connecting"].add(gc.isenabled())


async def scenario(session, user):
    SEEN["loading"].add(gc.isenabled())
    SEEN["frozen"].add(gc.get_freeze_count() > 0)
    await user.call("echo", user.payload)
"""


@pytest.mark.slow
async def test_the_collector_sits_out_the_connect_storm_and_the_load(tmp_path: Path) -> None:
    # At 10,000 sessions, the automatic collections while the sessions connect took 2.2 of
    # the 10 s; during the load, each full one stalls the loop for hundreds of ms.
    import gc

    from jamsocket_rt.load import FixedTarget, LoadConfig, run_load

    path = tmp_path / "gc_scenario.py"
    path.write_text(GC_SCENARIO)
    with timing_peer() as (origin, _):
        response = json.loads(fixed_response(origin, f"{origin}/no-status-here"))
        config = LoadConfig(
            target=FixedTarget(response),
            assume_ready=True,
            sessions=3,
            iterations=2,
            rate=20,
            scenario=str(path),
        )
        assert gc.isenabled()
        frozen_before = gc.get_freeze_count()
        result = await run_load(config, progress=None)
    assert result.report["operations"]["echo"]["count"] == 6
    module = next(m for m in sys.modules.values() if getattr(m, "__file__", None) == str(path))
    assert {"connecting": {False}, "loading": {False}, "frozen": {True}} == module.SEEN
    assert gc.isenabled()  # all restored
    assert gc.get_freeze_count() == frozen_before


@pytest.mark.pure
def test_a_session_keeps_its_state_in_slots_and_still_takes_a_users_attributes() -> None:
    # 45 attributes are too many for a dict with shared keys: each Session's own dict took
    # 1.5 KiB (15 MiB at 10,000 sessions).
    import weakref

    import jamsocket_rt as jrt

    response = jrt.ConnectResponse.from_dict(
        {
            "backend_id": "b",
            "spawned": False,
            "status": "ready",
            "token": "t",
            "url": "http://127.0.0.1:1/t/",
            "status_url": "http://127.0.0.1:1/status",
        }
    )
    session = jrt.Session(response)
    extra = session.namespace("/extra")
    assert vars(session) == {}
    assert vars(extra) == {}
    session.bot_name = "mine"  # type: ignore[attr-defined]
    assert vars(session) == {"bot_name": "mine"}
    assert weakref.ref(session)() is session
