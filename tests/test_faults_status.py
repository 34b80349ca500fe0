"""The status stream under faults: dropped, cut, refused while the backend ends, and bad input.

A :class:`~faultproxy.FaultProxy` sits between the Session's status watcher and the dev server's
API (the ConnectResponse's ``status_url`` is pointed at it). The bad-input table serves status
streams from a stub, one malformed body per row, and checks the exact error, its message, and
that nothing is left running.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

import jamsocket_rt as jrt
from jamsocket_rt.asyncio import status as status_hub
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import backend_command
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.tasks import client_tasks

WALK = ["scheduled", "loading", "starting", "waiting", "ready"]
# What follows a terminate: "terminating" may be skipped when the status is read directly (a
# probe after the proxy's 410 sees only the latest), never repeated.
ENDINGS = ([*WALK, "terminating", "terminated"], [*WALK, "terminated"])


class Statuses:
    """Every on_status and on_terminated callback of a Session, in order."""

    def __init__(self, session: jrt.Session) -> None:
        self.seen: list[str] = []
        self.terminated: list[jrt.BackendState] = []
        session.on_status(lambda state: self.seen.append(str(state.status)))
        session.on_terminated(self.terminated.append)


def accepted_more_than(proxy: FaultProxy, count: int) -> Callable[[], bool]:
    """Whether ``proxy`` has accepted more than ``count`` connections (a resumed stream)."""
    return lambda: proxy.accepted > count


@pytest.fixture
async def dev() -> AsyncIterator[DevServer]:
    async with DevServer(backend=backend_command("python"), quiet=True) as server:
        yield server


@pytest.fixture
async def api(dev: DevServer) -> AsyncIterator[jrt.Jamsocket]:
    async with jrt.Jamsocket.dev_server(dev.api_url) as client:
        yield client


@pytest.fixture
async def status(dev: DevServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(port_of(dev.api_url)) as proxy:
        yield proxy


@pytest.mark.slow
async def test_dropped_while_waiting_for_ready_resumes_without_repeats() -> None:
    # A backend that takes a second and a half to open its port: time to cut its stream twice.
    slow = f"sleep 1.5; exec {shlex.quote(sys.executable)} -m jamsocket_rt.dev.example_backend"
    dev = DevServer(backend=slow, quiet=True)
    async with (
        dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        FaultProxy(port_of(dev.api_url)) as status,
    ):
        session = jrt.Session(through(await api.connect(), status=status), ready_timeout=20)
        statuses = Statuses(session)
        connecting = asyncio.ensure_future(session.connect())
        try:
            await eventually(lambda: "waiting" in statuses.seen, timeout=10)
            accepted = status.accepted
            assert status.close_all() >= 1  # the server hangs up the stream (FIN)...
            await eventually(lambda: status.accepted > accepted, message="not resumed")
            assert status.reset_all() >= 1  # ...and then the resumed one is cut (RST)
            await asyncio.wait_for(connecting, 20)
            assert session.ready
            assert statuses.seen == WALK, "each status once, in order, across the replays"
            assert status.accepted >= 3, "the stream was resumed"
        finally:
            await session.close()


async def test_cut_while_connected_resumes_and_terminated_is_not_missed(
    api: jrt.Jamsocket, status: FaultProxy
) -> None:
    s = jrt.Session(through(await api.connect(), status=status))
    statuses = Statuses(s)
    async with s:
        for _ in range(3):
            accepted = status.accepted
            assert status.reset_all() >= 1
            await eventually(accepted_more_than(status, accepted), timeout=5, message="not resumed")
        waiting = asyncio.ensure_future(s.wait_for("never"))
        status.reset_all()  # and once more, just before the end
        assert s.backend_id is not None
        await api.terminate(s.backend_id)
        with pytest.raises(jrt.BackendTerminated):
            await asyncio.wait_for(waiting, 5)
        await eventually(lambda: statuses.terminated)
        await asyncio.sleep(0.3)  # an absence: no second on_terminated comes meanwhile
        assert len(statuses.terminated) == 1
        assert statuses.seen in ENDINGS


async def test_terminated_while_the_status_path_is_down_is_heard_once_it_returns(
    api: jrt.Jamsocket, status: FaultProxy
) -> None:
    s = jrt.Session(through(await api.connect(), status=status))
    statuses = Statuses(s)
    async with s:
        waiting = asyncio.ensure_future(s.wait_for("never"))
        status.refuse()
        status.reset_all()
        assert s.backend_id is not None
        await api.terminate(s.backend_id)
        # Issue 12: the backend says goodbye with a Socket.IO DISCONNECT ("io server
        # disconnect"), which is no longer retried (the retry's 410 was a TokenExpired here):
        # with the status unreadable, the session waits for the status to say how it ended.
        await eventually(lambda: s.state is jrt.SessionState.KICKED, timeout=5)
        assert not waiting.done()
        assert statuses.terminated == []
        await status.heal()
        await eventually(lambda: statuses.terminated, timeout=15, message="terminated missed")
        with pytest.raises(jrt.BackendTerminated):
            await asyncio.wait_for(waiting, 5)
        await asyncio.sleep(0.2)  # an absence: no second on_terminated comes meanwhile
        assert len(statuses.terminated) == 1
        assert s.terminated is not None
        assert statuses.seen in ENDINGS


# --------------------------------------------------------------------------- bad input

TIME = '"time": "2024-05-01T10:00:00Z"'


class StatusStub:
    """Serves one status stream body (then stays open), and 404 to the plain status GET."""

    def __init__(self, body: bytes, content_type: str, http_status: int) -> None:
        self.body = body
        self.content_type = content_type
        self.http_status = http_status
        self.app = web.Application()
        self.app.router.add_get("/b1/status", self.status)
        self.app.router.add_get("/b1/status/stream", self.stream)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "not yet"}, status=404)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.http_status != 200:
            return web.json_response({"error": "refused"}, status=self.http_status)
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        await response.write(self.body)
        await asyncio.sleep(3600)  # streams never end by themselves
        return response


def event(payload: Any) -> bytes:
    return b"data:" + (payload if isinstance(payload, bytes) else payload.encode()) + b"\n\n"


SSE = "text/event-stream"

BAD_STREAMS = [
    # (row id, body, content type, HTTP status, expected error, in its message)
    ("invalid-json", event("{not json"), SSE, 200, jrt.InvalidResponse, "not valid JSON"),
    (
        "wrong-type",
        event(f'{{"status": 5, {TIME}}}'),
        SSE,
        200,
        jrt.InvalidResponse,
        "status: expected a string, got a number",
    ),
    (
        "null",
        event(f'{{"status": null, {TIME}}}'),
        SSE,
        200,
        jrt.InvalidResponse,
        "status: expected a string, got null",
    ),
    (
        "missing-field",
        event('{"status": "ready"}'),
        SSE,
        200,
        jrt.InvalidResponse,
        "time: required field is missing",
    ),
    ("not-an-object", event("[1, 2]"), SSE, 200, jrt.InvalidResponse, "expected a JSON object"),
    (
        "endless-line",
        b"data:" + b"x" * (1024 * 1024 + 10),
        SSE,
        200,
        jrt.EventStreamTooLarge,
        "longer than the limit of 1048576 bytes",
    ),
    (
        "not-a-stream",
        b"<html>hello</html>",
        "text/html",
        200,
        jrt.InvalidResponse,
        "expected a text/event-stream, got text/html",
    ),
    ("refused", b"", SSE, 403, jrt.ApiError, "HTTP 403"),
    (
        "unknown-status",
        event(json.dumps({"status": "hibernating", "time": "2024-05-01T10:00:00Z"})),
        SSE,
        200,
        jrt.ReadyTimeout,
        "last status: hibernating",
    ),
    (
        "malformed-field-ignored",
        b"datum:" + event(f'{{"status": "ready", {TIME}}}')[5:] + b"garbage line\n\n",
        SSE,
        200,
        jrt.ReadyTimeout,
        "last status: none yet; the status could not be read: ApiError: HTTP 404",
    ),
    (
        "silent",
        b"",
        SSE,
        200,
        jrt.ReadyTimeout,
        "last status: none yet; the status could not be read: ApiError: HTTP 404",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "http_status", "error", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_STREAMS],
)
async def test_bad_status_streams_fail_clearly_and_leave_nothing_running(
    body: bytes, content_type: str, http_status: int, error: type[Exception], message: str
) -> None:
    runner = web.AppRunner(StatusStub(body, content_type, http_status).app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with FaultProxy(runner.addresses[0][1]) as counted:
            response = jrt.ConnectResponse.from_dict(
                {
                    "backend_id": "b1",
                    "spawned": True,
                    "status": "scheduled",
                    "token": "SECRET-TOKEN",
                    "url": f"{counted.url}/SECRET-TOKEN/",
                    "status_url": f"{counted.url}/b1/status",
                }
            )
            before = asyncio.all_tasks()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(error) as info:
                async with jrt.Session(response, ready_timeout=1.0):
                    pass
            assert message in str(info.value)
            assert "SECRET-TOKEN" not in str(info.value)
            if error is not jrt.ReadyTimeout:
                assert loop.time() - started < 1.0, "a bad stream ends the wait at once"
            # Nothing left: no task, no connection, no watcher.
            await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=2)
            await eventually(lambda: counted.open_connections == 0, timeout=2)
            assert not any(url == response.status_url for _, url in status_hub._watchers)
    finally:
        await runner.cleanup()
