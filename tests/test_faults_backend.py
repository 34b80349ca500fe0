"""A backend that crashes, a ConnectResponse that points nowhere, an API that misbehaves, and bad
outgoing input: each a clear error, and nothing left running (tasks, connections, watchers).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import jamsocket_rt as jrt
from jamsocket_rt.asyncio import status as status_hub
from jamsocket_rt.dev import DevServer
from jamsocket_rt.dev._backends import free_port
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.sessions import reached_backend
from tests.helpers.tasks import client_tasks


def no_watcher_for(response: jrt.ConnectResponse) -> bool:
    return not any(url == response.status_url for _, url in status_hub._watchers)


# --------------------------------------------------------------------------- crash


async def test_a_crash_ends_everything_within_two_seconds_and_nothing_reconnects(
    dev: DevServer, api: jrt.Jamsocket
) -> None:
    async with FaultProxy(port_of(dev.proxy_url)) as counted:
        session = jrt.Session(
            through(await api.connect(), url=counted), reconnect_delay=(0.05, 0.2)
        )
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[jrt.BackendState] = loop.create_future()
        session.on_terminated(ended.set_result)
        async with session as s:
            call = asyncio.ensure_future(s.call("sleep", 30, timeout=60))
            waiting = asyncio.ensure_future(s.wait_for("never"))
            await reached_backend(s)
            connections = counted.accepted
            await s.send("exit", 3)  # the backend dies at once, without a goodbye
            state = await asyncio.wait_for(ended, 2)
            assert state.exit_error is True
            with pytest.raises(jrt.BackendTerminated, match="exit_error=True"):
                await asyncio.wait_for(call, 1)
            with pytest.raises(jrt.BackendTerminated):
                await asyncio.wait_for(waiting, 1)
            after_the_end = counted.accepted
            await asyncio.sleep(1.0)  # an absence: no connection attempt comes meanwhile
            assert counted.accepted == after_the_end, "no connection attempt after the end"
            # The verdict comes within the disconnect grace period: at most a stray attempt.
            assert after_the_end - connections <= 1
            assert not s.connected
            with pytest.raises(jrt.BackendTerminated):
                await s.call("echo", 1)


# The example backend, slow to exit: on SIGTERM it closes its connections at once but lives on
# for 2 s, so that the proxy refuses its tokens (410) while its status still says terminating.
SLOW_EXIT_BACKEND = """
import asyncio
from jamsocket_rt.dev import example_backend

class SlowExit(example_backend.ExampleBackend):
    async def close(self):
        await super().close()
        await asyncio.sleep(2)

example_backend.ExampleBackend = SlowExit
example_backend.main()
"""


@pytest.mark.slow
async def test_a_410_from_a_terminating_backend_is_its_end_not_an_expired_token() -> None:
    dev = DevServer(backend=[sys.executable, "-c", SLOW_EXIT_BACKEND], quiet=True)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        session = jrt.Session(await api.connect(), reconnect_delay=(0.05, 0.2))
        ended: list[jrt.BackendState] = []
        session.on_terminated(ended.append)
        async with session as s:
            waiting = asyncio.ensure_future(s.wait_for("never"))
            assert s.backend_id is not None
            await api.terminate(s.backend_id)
            # Disconnected at once, refused with 410 while terminating: not a TokenExpired.
            with pytest.raises(jrt.BackendTerminated):
                await asyncio.wait_for(waiting, 10)
            await eventually(lambda: ended, timeout=10)
            assert len(ended) == 1
            assert ended[0].termination_reason == jrt.TerminationReason.EXTERNAL
            with pytest.raises(jrt.BackendTerminated):
                await s.send("record", 1)


# --------------------------------------------------------------------------- dead addresses


@pytest.mark.slow
@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_a_connect_response_pointing_at_a_dead_port(api: jrt.Jamsocket) -> None:
    response = await api.connect()
    dead = free_port()
    before = asyncio.all_tasks()
    bad_url = jrt.ConnectResponse.from_dict(
        {**response.to_dict(), "url": f"http://127.0.0.1:{dead}/{response.token}/"}
    )
    with pytest.raises(ConnectionError) as info:
        async with jrt.Session(bad_url, connect_timeout=2):
            pass
    assert f"127.0.0.1:{dead}" in str(info.value)
    assert response.token not in str(info.value)

    bad_status = jrt.ConnectResponse.from_dict(
        {**response.to_dict(), "status_url": f"http://127.0.0.1:{dead}/v2/backend/b/status"}
    )
    with pytest.raises(jrt.ReadyTimeout) as timeout:
        async with jrt.Session(bad_status, ready_timeout=1.5):
            pass
    assert f"cannot connect to http://127.0.0.1:{dead}" in str(timeout.value)
    await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=2)
    assert no_watcher_for(bad_url)
    assert no_watcher_for(bad_status)


# --------------------------------------------------------------------------- API faults


async def never(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)  # the server's part: it never answers (the test ends first)
    return web.Response()


def answer(status: int, body: str, content_type: str = "application/json") -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    return handler


API_FAULTS = [
    # (row id, handler, expected error, in its message)
    ("never-answers", never, jrt.ApiTimeout, "no answer from http://127.0.0.1:"),
    (
        "5xx",
        answer(503, json.dumps({"error": {"message": "down", "code": "Unavailable"}})),
        jrt.ApiError,
        "HTTP 503 [Unavailable]: down",
    ),
    (
        "429",
        answer(429, json.dumps({"error": {"message": "slow down", "code": "RateLimited"}})),
        jrt.ApiError,
        "rate or plan limit",
    ),
    ("not-json", answer(200, "<html>hi</html>", "text/html"), jrt.InvalidResponse, "JSON"),
    (
        "wrong-shape",
        answer(200, json.dumps({"backend_id": 7})),
        jrt.InvalidResponse,
        "backend_id: expected a string, got a number",
    ),
]


@pytest.mark.parametrize(
    ("handler", "error", "message"), [pytest.param(*row[1:], id=row[0]) for row in API_FAULTS]
)
async def test_api_faults_are_clear_errors_that_leave_nothing_open(
    handler: Callable[[web.Request], Awaitable[web.Response]],
    error: type[Exception],
    message: str,
) -> None:
    app = web.Application()
    app.router.add_post("/v2/service/{account}/{service}/connect", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with FaultProxy(runner.addresses[0][1]) as counted:
            before = asyncio.all_tasks()
            loop = asyncio.get_running_loop()
            started = loop.time()
            api = jrt.Jamsocket(
                account="acme", token="BEARER-SECRET", service="chat", api_url=counted.url,
                timeout=0.5,
            )  # fmt: skip
            async with api:
                with pytest.raises(error) as info:
                    await api.connect(key="k")
            assert loop.time() - started < 2.0, "within the configured limit"
            assert message in str(info.value)
            assert "BEARER-SECRET" not in str(info.value)
            await eventually(lambda: counted.open_connections == 0, timeout=2)
            await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=2)
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- outgoing input

BAD_OUTGOING = [
    # (row id, event, args, expected error, in its message)
    ("event-not-a-string", 123, (), TypeError, "event: expected a string, got int"),
    ("event-empty", "", (), ValueError, "event: expected a non-empty name"),
    ("event-reserved", "disconnect", (), ValueError, "'disconnect' is reserved"),
    ("object", "record", (object(),), TypeError, "JSON.serializable"),
    ("set", "record", ({1, 2},), TypeError, "JSON.serializable"),
    ("nested", "record", ({"a": [1, {"b": object()}]},), TypeError, "JSON.serializable"),
]


@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
@pytest.mark.parametrize(
    ("event", "args", "error", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_OUTGOING],
)
async def test_bad_outgoing_input_raises_before_anything_is_queued_or_sent(
    api: jrt.Jamsocket, event: Any, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    session = jrt.Session(await api.connect())
    for method in (session.send, session.call):  # not connected yet: the queueing path
        with pytest.raises(error, match=message):
            await method(event, *args)
    assert len(session._outbox) == 0
    async with session as s:
        for method in (s.send, s.call):  # connected: the direct path
            with pytest.raises(error, match=message):
                await method(event, *args)
        assert s._inflight == {}
        assert await s.call("records") == [], "nothing reached the backend"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"no_such_option": 1}, TypeError, "no_such_option"),
        ({"max_backlog": 1}, ValueError, "max_backlog"),
        ({"max_payload": 0}, ValueError, "max_payload"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"reconnect_delay": (0, 1)}, ValueError, r"reconnect_delay\[0\]"),
    ],
)
def test_bad_options_raise_at_construction_for_both_front_ends(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    response = {
        "backend_id": "b",
        "spawned": True,
        "status": "ready",
        "token": "t",
        "url": "http://127.0.0.1:1/t/",
        "status_url": "http://127.0.0.1:1/v2/backend/b/status",
    }
    for front_end in (jrt.Session, jrt.SyncSession):
        with pytest.raises(error, match=message):
            front_end(response, **options)
    session = jrt.Session(response)
    with pytest.raises(ValueError, match="overflow"):
        session.stream("x", overflow="spill")
