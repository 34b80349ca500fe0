"""Session behaviours that need a hand-made peer: ready_url, queue bounds, headers and auth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp import web

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import backend_command


class StuckPlatform:
    """A status server whose stream never says ready, a ready_url, and a Socket.IO backend.

    The JS client ignores ready_url; a backend that only ready_url vouches for must still be
    reached.
    """

    def __init__(self, ready_after: float, transports: list[str] | None = None) -> None:
        self.ready_after = ready_after
        self.started = time.monotonic()
        self.ready_polls = 0
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp", logger=False, engineio_logger=False, transports=transports
        )
        self.app = web.Application()
        self.sio.attach(self.app, socketio_path="tok/socket.io")
        self.app.router.add_get("/status", self.status)
        self.app.router.add_get("/status/stream", self.stream)
        self.app.router.add_get("/ready", self.ready)
        self.sio.on("echo", self.echo)  # a call: python-socketio's decorators are untyped

    async def echo(self, sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    def state(self) -> dict[str, Any]:
        return {"status": "waiting", "time": "2026-01-01T00:00:00Z"}

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data:{json.dumps(self.state())}\n\n".encode())
        await asyncio.sleep(3600)  # the server's part: a status stream never ends by itself
        return response

    async def ready(self, request: web.Request) -> web.Response:
        self.ready_polls += 1
        if time.monotonic() - self.started < self.ready_after:
            return web.Response(status=503)
        return web.Response(text="ok")


@pytest.fixture
async def stuck() -> AsyncIterator[tuple[StuckPlatform, jrt.ConnectResponse]]:
    async with serve(StuckPlatform(ready_after=0.4)) as served:
        yield served


@contextlib.asynccontextmanager
async def serve(
    platform: StuckPlatform,
) -> AsyncIterator[tuple[StuckPlatform, jrt.ConnectResponse]]:
    runner = web.AppRunner(platform.app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    response = jrt.ConnectResponse.from_dict(
        {
            "backend_id": "b1",
            "spawned": True,
            "status": "waiting",
            "token": "tok",
            "url": f"{base}/tok/",
            "status_url": f"{base}/status",
            "ready_url": f"{base}/ready",
        }
    )
    try:
        yield platform, response
    finally:
        await runner.cleanup()


async def test_ready_url_says_ready_first(stuck: tuple[StuckPlatform, jrt.ConnectResponse]) -> None:
    platform, response = stuck
    async with jrt.Session(response, ready_timeout=10) as s:
        assert s.ready
        assert platform.ready_polls >= 2, "ready_url should have been polled until it said 200"
        assert await s.call("echo", "via ready_url") == "via ready_url"


async def test_without_ready_url_the_stuck_backend_times_out(
    stuck: tuple[StuckPlatform, jrt.ConnectResponse],
) -> None:
    _, response = stuck
    no_ready_url = jrt.ConnectResponse.from_dict({**response.to_dict(), "ready_url": ""})
    with pytest.raises(jrt.ReadyTimeout, match="last status: waiting"):
        async with jrt.Session(no_ready_url, ready_timeout=0.5):
            pass


@pytest.fixture
async def api() -> AsyncIterator[jrt.Jamsocket]:
    dev = DevServer(backend=backend_command("python"), quiet=True)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as client:
        yield client


async def test_the_send_queue_is_bounded(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect(), max_queue=3)
    for seq in range(3):
        await session.send("record", seq)
    with pytest.raises(jrt.SendQueueFull, match="max_queue=3"):
        await session.send("record", 3)
    async with session:
        assert await session.call("records") == [0, 1, 2], "nothing lost, nothing extra"


async def test_headers_and_auth_reach_the_backend(api: jrt.Jamsocket) -> None:
    response = await api.connect(user="ada", auth={"role": "admin"})
    auth = {"secret": response.secret_token}
    async with jrt.Session(response, auth=auth, headers={"X-Client": "bot-7"}) as s:
        who = await s.call("whoami")
    assert who["auth"] == auth
    assert who["headers"]["x-verified-username"] == "ada"
    assert json.loads(who["headers"]["x-verified-user-data"]) == {"role": "admin"}


async def test_websocket_first_then_polling(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect(), transports=("websocket", "polling")) as s:
        assert await s.call("echo", "either") == "either"
        assert type(s._transport).__name__ == "WebSocketTransport"


async def test_falls_back_to_polling_where_websockets_are_refused() -> None:
    async with serve(StuckPlatform(ready_after=0, transports=["polling"])) as (_, response):
        with pytest.raises(ConnectionError):
            async with jrt.Session(response, transports=["websocket"], connect_timeout=2):
                pass
        async with jrt.Session(response, transports=["websocket", "polling"]) as s:
            assert await s.call("echo", "polling") == "polling"
            assert type(s._transport).__name__ == "PythonSocketIOTransport"
