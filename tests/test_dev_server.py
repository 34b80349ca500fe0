"""The dev server's API and backend lifecycle, with real processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from jamsocket_rt import BackendState, ConnectResponse
from jamsocket_rt.cli import main
from jamsocket_rt.dev import DevServer
from jamsocket_rt.dev._output import LinePump
from tests.helpers.polling import eventually, eventually_sync

# A backend whose behaviour the connect request picks through spawn.executable.env.
#   MODE=serve     answer every HTTP request with 200 "ok" ("/hold": keep it open, no answer)
#   MODE=exit      exit at once with code CODE
#   MODE=noport    never listen
#   MODE=stubborn  serve, ignoring SIGTERM
#   MODE=spam      serve while writing output without end (and a line without end)
#   MODE=child     serve, after starting a grandchild and printing "child PID"
BACKEND = r"""
import os, signal, socket, subprocess, sys, threading, time
mode = os.environ.get("MODE", "serve")
if mode == "exit":
    sys.exit(int(os.environ.get("CODE", "0")))
if mode == "noport":
    time.sleep(600)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "child":
    child = subprocess.Popen(["sleep", "600"])
    print("child", child.pid, flush=True)
if mode == "spam":
    def spam():
        out = sys.stdout.buffer
        while True:
            out.write(b"spam " * 20 + b"\n" * 50)
            out.write(b"x" * 200_000)
            out.write(b"\n")
    threading.Thread(target=spam, daemon=True).start()

def handle(conn):
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return
            head += data
        if head.split(b" ")[1] == b"/hold":
            while conn.recv(65536):
                pass
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

server = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""
COMMAND = [sys.executable, "-c", BACKEND]


@pytest.fixture
async def dev() -> AsyncIterator[DevServer]:
    async with DevServer(
        COMMAND, startup_timeout=10, terminate_grace=0.5, output=io.StringIO()
    ) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


def spawn(mode: str = "serve", **options: Any) -> dict[str, Any]:
    """A connect body whose backend runs in ``mode`` (see BACKEND)."""
    env = {"MODE": mode, **options.pop("env", {})}
    return {"spawn": {"executable": {"env": env}, **options}}


async def connect(http: aiohttp.ClientSession, dev: DevServer, body: Any = None) -> ConnectResponse:
    async with http.post(dev.connect_url(), json={} if body is None else body) as response:
        assert response.status == 200, await response.text()
        return ConnectResponse.from_dict(await response.json())


async def stream(
    http: aiohttp.ClientSession, status_url: str, until: str = "terminated"
) -> list[BackendState]:
    """The states of the status stream, up to the first ``until`` (or the stream's end)."""
    states: list[BackendState] = []
    async with http.get(status_url + "/stream") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for line in response.content:
            if line.startswith(b"data:"):
                states.append(BackendState.from_json(line[len(b"data:") :]))
                if states[-1].status == until:
                    break
    return states


def statuses(states: list[BackendState]) -> list[str]:
    return [str(state.status) for state in states]


async def terminate(
    http: aiohttp.ClientSession, dev: DevServer, backend_id: str, *, hard: bool = False
) -> None:
    url = f"{dev.api_url}/v2/backend/{backend_id}/terminate"
    async with http.post(url, json={"hard": hard}) as response:
        assert response.status == 200, await response.text()


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    await eventually(
        lambda: not any(alive(pid) for pid in pids),
        timeout=timeout,
        interval=0.05,
        message=lambda: f"still alive: {[p for p in pids if alive(p)]}",
    )


STARTUP = ["scheduled", "loading", "starting", "waiting", "ready"]


async def test_status_walk_replay_and_soft_terminate(
    dev: DevServer, http: aiohttp.ClientSession
) -> None:
    started = time.monotonic()
    response = await connect(http, dev, spawn())
    assert response.spawned
    assert response.status_url == f"{dev.api_url}/v2/backend/{response.backend_id}/status"
    assert response.url == f"{dev.proxy_url}/{response.token}/"
    assert response.ready_url == ""
    assert response.secret_token
    assert response.secret_token != response.token

    live = asyncio.create_task(stream(http, response.status_url))
    assert statuses(await stream(http, response.status_url, until="ready")) == STARTUP
    assert time.monotonic() - started < 5
    # A stream opened later replays the same history.
    replay = await stream(http, response.status_url, until="ready")
    assert statuses(replay) == STARTUP
    async with http.get(response.status_url) as status:
        assert status.headers["Access-Control-Allow-Origin"] == "*"
        assert BackendState.from_dict(await status.json()).is_ready

    await terminate(http, dev, response.backend_id)
    states = await asyncio.wait_for(live, 5)
    assert statuses(states) == [*STARTUP, "terminating", "terminated"]
    assert [s.time for s in states] == sorted(s.time for s in states)
    assert states[-2].termination_reason == "external"
    assert states[-1].termination_reason == "external"
    assert states[-1].termination_kind == "soft"
    assert states[-1].exit_error is None
    # After terminated the stream ends by itself, with the whole history.
    assert statuses(await stream(http, response.status_url, until="none")) == statuses(states)
    async with http.get(response.status_url) as status:
        assert BackendState.from_dict(await status.json()).is_terminated


async def test_key_reuse_new_token_then_respawn(
    dev: DevServer, http: aiohttp.ClientSession
) -> None:
    first = await connect(http, dev, {"key": "room-1", **spawn()})
    second = await connect(http, dev, {"key": "room-1"})
    other = await connect(http, dev, {"key": "room-2", **spawn()})
    assert first.spawned
    assert not second.spawned
    assert other.spawned
    assert second.backend_id == first.backend_id != other.backend_id
    assert second.token != first.token
    assert second.secret_token != first.secret_token
    await stream(http, first.status_url, until="ready")
    for url in (first.url, second.url):  # both tokens work
        async with http.get(url) as response:
            assert response.status == 200

    await terminate(http, dev, first.backend_id)
    await stream(http, first.status_url)
    third = await connect(http, dev, {"key": "room-1", **spawn()})
    assert third.spawned
    assert third.backend_id != first.backend_id
    async with http.get(first.url) as response:
        assert response.status == 410


async def test_hard_terminate(http: aiohttp.ClientSession) -> None:
    async with DevServer(COMMAND, terminate_grace=30, output=io.StringIO()) as dev:
        response = await connect(http, dev, spawn("stubborn"))
        await stream(http, response.status_url, until="ready")
        started = time.monotonic()
        await terminate(http, dev, response.backend_id, hard=True)
        states = await stream(http, response.status_url)
        assert time.monotonic() - started < 5  # SIGKILL at once, not after the 30 s grace
    assert statuses(states)[-2:] == ["hard-terminating", "terminated"]
    assert states[-1].termination_kind == "hard"
    assert states[-1].termination_reason == "external"


async def test_soft_terminate_kills_after_the_grace_period(
    dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, dev, spawn("stubborn"))
    await stream(http, response.status_url, until="ready")
    (pid,) = dev.backend_pids
    started = time.monotonic()
    await terminate(http, dev, response.backend_id)
    states = await stream(http, response.status_url)
    assert time.monotonic() - started > 0.4  # not before the fixture's grace of 0.5 s
    assert statuses(states)[-2:] == ["terminating", "terminated"]
    assert states[-1].termination_kind == "soft"
    assert not alive(pid)


async def test_hard_terminate_escalates_a_soft_one(
    dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, dev, spawn("stubborn", max_idle_seconds=1))
    states = await stream(http, response.status_url, until="terminating")
    await terminate(http, dev, response.backend_id, hard=True)
    states = await stream(http, response.status_url)
    assert statuses(states)[-3:] == ["terminating", "hard-terminating", "terminated"]
    assert states[-1].termination_reason == "swept"  # the first reason is kept
    assert states[-1].termination_kind == "hard"


@pytest.mark.parametrize(("code", "exit_error"), [(3, True), (0, False)])
async def test_backend_exiting_by_itself(
    dev: DevServer, http: aiohttp.ClientSession, code: int, exit_error: bool
) -> None:
    response = await connect(http, dev, spawn("exit", env={"CODE": str(code)}))
    states = await stream(http, response.status_url)
    assert statuses(states)[-1] == "terminated"
    assert "terminating" not in statuses(states)
    assert "ready" not in statuses(states)
    assert states[-1].exit_error is exit_error
    assert states[-1].termination_reason is None


async def test_command_that_cannot_start(http: aiohttp.ClientSession) -> None:
    async with DevServer(["/nonexistent/backend"], output=io.StringIO()) as dev:
        response = await connect(http, dev)
        states = await stream(http, response.status_url)
    assert statuses(states) == ["scheduled", "loading", "terminated"]
    assert states[-1].exit_error is True


async def test_startup_timeout(http: aiohttp.ClientSession) -> None:
    async with DevServer(COMMAND, startup_timeout=0.5, output=io.StringIO()) as dev:
        response = await connect(http, dev, spawn("noport"))
        started = time.monotonic()
        states = await stream(http, response.status_url)
        assert time.monotonic() - started > 0.3  # not before the startup timeout of 0.5 s
        assert dev.backend_pids == []
    assert statuses(states) == [*STARTUP[:-1], "hard-terminating", "terminated"]
    assert states[-2].termination_reason == "startuptimeout"
    assert states[-1].termination_reason == "startuptimeout"
    assert states[-1].termination_kind == "hard"


@pytest.mark.slow
async def test_idle_sweep_waits_for_open_connections(
    dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, dev, spawn(max_idle_seconds=1))
    await stream(http, response.status_url, until="ready")
    # A proxied connection held open for longer than the limit keeps the backend alive.
    _reader, writer = await asyncio.open_connection("127.0.0.1", int(dev.proxy_url.split(":")[-1]))
    writer.write(f"GET /{response.token}/hold HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await asyncio.sleep(1.6)  # an absence: longer than the limit, and no sweep
    async with http.get(response.status_url) as status:
        assert (await status.json())["status"] == "ready"
    writer.close()
    closed = time.monotonic()
    states = await stream(http, response.status_url)
    assert time.monotonic() - closed > 0.8  # not before the idle limit of 1 s
    assert statuses(states)[-2:] == ["terminating", "terminated"]
    assert states[-1].termination_reason == "swept"
    assert states[-1].termination_kind == "soft"


async def test_lifetime_limit(dev: DevServer, http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    response = await connect(http, dev, spawn(lifetime_limit_seconds=1))
    states = await stream(http, response.status_url)
    assert time.monotonic() - started > 0.9  # not before the lifetime limit of 1 s
    assert statuses(states) == [*STARTUP, "terminating", "terminated"]
    assert states[-1].termination_reason == "keyexpired"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "status"), ("GET", "status/stream"), ("POST", "terminate")],
)
async def test_unknown_backend_is_404(
    dev: DevServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    url = f"{dev.api_url}/v2/backend/nosuchbackend/{path}"
    async with http.request(method, url, json={}) as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert error["status"] == 404
    assert error["code"] == "BackendNotFound"
    assert error["message"]
    assert error["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"spawn": "yes"}', "spawn"),
        (b'{"key": 5}', "key"),
        (b'{"spawn": {"max_idle_seconds": "soon"}}', "spawn.max_idle_seconds"),
        (b'{"spawn": {"lifetime_limit_seconds": 0}}', "spawn.lifetime_limit_seconds"),
        (b'{"spawn": {"executable": {"env": {"A": 1}}}}', "spawn.executable.env"),
        (b'{"user": "eve\\r\\nx-verified-username: admin"}', "user"),
        (b'{"key": ', "JSON"),
        (b"[1, 2]", "object"),
    ],
)
async def test_bad_connect_body_is_400_naming_the_field(
    dev: DevServer, http: aiohttp.ClientSession, body: bytes, field: str
) -> None:
    async with http.post(dev.connect_url(), data=body) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["status"] == 400
    assert error["code"] == "InvalidConnectRequest"
    assert field in error["message"]
    assert dev.backend_pids == []


async def test_connect_variants(dev: DevServer, http: aiohttp.ClientSession) -> None:
    # An empty body, the service/environment form of the path, and spawn: false.
    async with http.post(f"{dev.api_url}/v2/service/acct/svc/env/connect") as response:
        assert response.status == 200
        assert (await response.json())["spawned"] is True
    async with http.post(dev.connect_url(), json={"key": "nobody", "spawn": False}) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NoBackendForKey"
    async with http.post(
        dev.connect_url(), json={}, headers={"Origin": "https://evil.example"}
    ) as response:
        assert response.status == 403


async def test_bad_terminate_body_is_400(dev: DevServer, http: aiohttp.ClientSession) -> None:
    response = await connect(http, dev, spawn())
    url = f"{dev.api_url}/v2/backend/{response.backend_id}/terminate"
    async with http.post(url, json={"hard": "yes"}) as answer:
        assert answer.status == 400
        assert "hard" in (await answer.json())["error"]["message"]
    async with http.post(url) as answer:  # an empty body is a soft terminate
        assert answer.status == 200
    assert statuses(await stream(http, response.status_url))[-1] == "terminated"


async def test_endless_output_does_not_stall_the_server(http: aiohttp.ClientSession) -> None:
    output = io.StringIO()
    async with DevServer(COMMAND, terminate_grace=0.5, output=output) as dev:
        response = await connect(http, dev, spawn("spam"))
        await stream(http, response.status_url, until="ready")
        slowest = 0.0
        for _ in range(20):
            started = time.monotonic()
            async with http.get(response.status_url) as status:
                assert status.status == 200
            async with http.get(response.url) as proxied:
                assert await proxied.text() == "ok"
            slowest = max(slowest, time.monotonic() - started)
            await asyncio.sleep(0.05)  # pacing: the probes spread over a second, not a wait
        assert slowest < 1.0
    lines = output.getvalue().splitlines()
    prefix = f"[{response.backend_id}] "
    assert all(line.startswith(prefix) for line in lines)
    assert any(line.endswith("[line truncated]") for line in lines)
    assert any("lines of output not shown" in line for line in lines)
    assert max(len(line) for line in lines) < 4096 + 100


def test_line_pump_cuts_long_lines_and_limits_the_rate() -> None:
    output = io.StringIO()
    pump = LinePump("[b] ", output, max_line_chars=10, max_lines_per_second=5)
    pump.feed(b"one\ntw")
    pump.feed(b"o\r\n" + b"x" * 25)
    pump.feed(b"y" * 5 + b"\nthree\n")
    pump.feed(b"\n".join(b"%d" % i for i in range(10)) + b"\nlast")
    pump.close()
    lines = output.getvalue().splitlines()
    assert lines[:4] == ["[b] one", "[b] two", "[b] xxxxxxxxxx [line truncated]", "[b] three"]
    # Five lines a second at most (unless the second changed between feeds).
    assert len(lines) <= 10
    assert lines[-1].startswith("[b] (")


async def test_close_leaves_no_process_behind(http: aiohttp.ClientSession) -> None:
    output = io.StringIO()
    dev = DevServer(COMMAND, startup_timeout=30, terminate_grace=0.5, output=output)
    await dev.start()
    ready = [await connect(http, dev, spawn(mode)) for mode in ("serve", "stubborn", "child")]
    starting = await connect(http, dev, spawn("noport"))
    for response in ready:
        await stream(http, response.status_url, until="ready")
    pids = dev.backend_pids
    assert len(pids) == 4
    grandchild = int(output.getvalue().split("] child ", 1)[1].split()[0])
    pids.append(grandchild)
    assert all(alive(pid) for pid in pids)

    started = time.monotonic()
    await dev.close()
    assert time.monotonic() - started < 3
    await wait_gone(pids)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(starting.status_url)
    await dev.close()  # again: nothing happens


def test_cli_dev_serves_until_interrupted(tmp_path: Any) -> None:
    script = tmp_path / "backend.py"
    script.write_text(BACKEND)
    command = f"{sys.executable} {script}"
    with subprocess.Popen(
        [sys.executable, "-m", "jamsocket_rt.cli", "dev", "--port", "0", "--backend", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(3)]
            api_url = banner[1].split()[-1]
            assert banner[0].startswith("jamsocket-rt dev server")
            request = urllib.request.Request(f"{api_url}/v2/service/-/-/connect", method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer_body:
                answer = json.load(answer_body)
            assert answer["spawned"] is True
            eventually_sync(lambda: backend_status(answer["status_url"]) == "ready")
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0
            assert "stopping" in process.stdout.read()
        finally:
            process.kill()


def backend_status(status_url: str) -> str:
    """The status a GET of ``status_url`` reads."""
    with urllib.request.urlopen(status_url, timeout=10) as answer:
        status: str = json.load(answer)["status"]
    return status


def test_cli_usage() -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["dev", "--help"])
    assert exit_info.value.code == 0


async def test_constructor_and_lifecycle_errors() -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevServer(host="0.0.0.0")
    with pytest.raises(ValueError, match="empty"):
        DevServer([])
    dev = DevServer(COMMAND, quiet=True)
    with pytest.raises(RuntimeError, match="not started"):
        _ = dev.api_url
    async with dev:
        with pytest.raises(RuntimeError, match="once"):
            await dev.start()
    with pytest.raises(RuntimeError, match="once"):
        await dev.start()
