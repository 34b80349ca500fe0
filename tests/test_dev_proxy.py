"""The dev server's token proxy: HTTP, WebSocket and polling through ``/{token}/``."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from yarl import URL

from jamsocket_rt import ConnectResponse
from jamsocket_rt.dev import DevServer

# An HTTP/1.1 keep-alive server answering every request with what it received, as JSON.
# DELAY: seconds to wait before listening; NOPORT: never listen.
ECHO_BACKEND = r"""
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": self.rfile.read(length).decode(),
            "env": {k: os.environ.get(k) for k in
                    ("PORT", "SESSION_BACKEND_ID", "JAMSOCKET_BACKEND_ID", "EXTRA")},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

if os.environ.get("NOPORT"):
    time.sleep(600)
time.sleep(float(os.environ.get("DELAY", "0")))
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Echo).serve_forever()
"""


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
async def echo_dev() -> AsyncIterator[DevServer]:
    async with DevServer(
        [sys.executable, "-c", ECHO_BACKEND],
        startup_timeout=1,
        terminate_grace=0.5,
        output=io.StringIO(),
    ) as server:
        yield server


@pytest.fixture
async def sio_dev() -> AsyncIterator[DevServer]:
    """The bundled example backend (a python-socketio server)."""
    async with DevServer(terminate_grace=0.5, output=io.StringIO()) as server:
        yield server


async def connect(http: aiohttp.ClientSession, dev: DevServer, **body: Any) -> ConnectResponse:
    async with http.post(dev.connect_url(), json=body) as response:
        assert response.status == 200, await response.text()
        return ConnectResponse.from_dict(await response.json())


async def wait_for(http: aiohttp.ClientSession, response: ConnectResponse, status: str) -> None:
    async with http.get(response.status_url + "/stream") as stream:
        async for line in stream.content:
            if line.startswith(b"data:") and json.loads(line[5:])["status"] == status:
                return
    raise AssertionError(f"the stream ended before {status}")


async def terminate(http: aiohttp.ClientSession, dev: DevServer, backend_id: str) -> None:
    url = f"{dev.api_url}/v2/backend/{backend_id}/terminate"
    async with http.post(url, json={"hard": True}) as answer:
        assert answer.status == 200


async def raw_request(dev: DevServer, data: bytes, *, half_close: bool = False) -> bytes:
    """Sends raw bytes to the proxy and returns everything it answers until it closes."""
    port = int(dev.proxy_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    if half_close:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key == name]


async def test_unknown_and_missing_tokens_are_410(
    echo_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/nosuchtoken/", "/nosuchtoken/socket.io/?EIO=4&transport=polling", "/"):
        async with http.get(echo_dev.proxy_url + path) as response:
            assert response.status == 410
            assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_http_is_forwarded_with_verified_headers(
    echo_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(
        http,
        echo_dev,
        user="alice",
        auth={"role": "admin", "name": "Zoë"},
        spawn={"executable": {"env": {"EXTRA": "yes"}}},
    )
    forged = {"X-Verified-Username": "mallory", "x-verified-backend": "other"}
    url = URL(response.url + "a/b%20c?x=1&y=%2F", encoded=True)  # sent exactly as written
    async with http.get(url, headers=forged) as answer:
        assert answer.status == 200
        assert answer.headers["x-plane-backend-id"] == response.backend_id
        echo = await answer.json()
    assert echo["method"] == "GET"
    assert echo["path"] == "/a/b%20c?x=1&y=%2F"
    assert header_values(echo, "x-verified-username") == ["alice"]
    assert header_values(echo, "x-verified-backend") == [response.backend_id]
    assert header_values(echo, "x-verified-secret") == [response.secret_token]
    (user_data,) = header_values(echo, "x-verified-user-data")
    assert json.loads(user_data) == {"role": "admin", "name": "Zoë"}
    assert header_values(echo, "connection") == ["close"]
    assert echo["env"]["SESSION_BACKEND_ID"] == response.backend_id
    assert echo["env"]["JAMSOCKET_BACKEND_ID"] == response.backend_id
    assert echo["env"]["EXTRA"] == "yes"
    assert echo["env"]["PORT"].isdigit()

    # A keep-alive client: the proxy closes after each response, the client reconnects.
    for index in range(3):
        async with http.post(response.url[:-1] + "?n=1", data=f"body {index}") as answer:
            echo = await answer.json()
        assert echo["path"] == "/?n=1"
        assert echo["method"] == "POST"
        assert echo["body"] == f"body {index}"

    # No user and no auth: no such headers at all.
    anonymous = await connect(http, echo_dev)
    async with http.get(anonymous.url) as answer:
        echo = await answer.json()
    assert header_values(echo, "x-verified-username") == []
    assert header_values(echo, "x-verified-user-data") == []


async def test_requests_are_held_until_ready(http: aiohttp.ClientSession) -> None:
    async with DevServer(
        [sys.executable, "-c", ECHO_BACKEND], output=io.StringIO(), terminate_grace=0.5
    ) as dev:
        response = await connect(http, dev, spawn={"executable": {"env": {"DELAY": "0.5"}}})
        assert response.status == "scheduled"
        async with http.get(response.url + "early") as answer:
            assert answer.status == 200
            assert (await answer.json())["path"] == "/early"


async def test_held_request_gets_410_when_the_backend_never_gets_ready(
    echo_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, echo_dev, spawn={"executable": {"env": {"NOPORT": "1"}}})
    async with http.get(response.url) as answer:  # the fixture's startup timeout is 1 s
        assert answer.status == 410


async def test_terminated_token_is_410(echo_dev: DevServer, http: aiohttp.ClientSession) -> None:
    response = await connect(http, echo_dev)
    async with http.get(response.url) as answer:
        assert answer.status == 200
    await terminate(http, echo_dev, response.backend_id)
    await wait_for(http, response, "terminated")
    async with http.get(response.url) as answer:
        assert answer.status == 410


async def test_malformed_and_oversized_heads(echo_dev: DevServer) -> None:
    assert (await raw_request(echo_dev, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    header = b"x-big: " + b"a" * 70_000 + b"\r\n"
    answer = await raw_request(echo_dev, b"GET /t/ HTTP/1.1\r\n" + header + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_half_closed_client_still_gets_its_answer(
    echo_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, echo_dev)  # not ready yet: the half-close waits too
    request = f"GET /{response.token}/half HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    answer = await raw_request(echo_dev, request, half_close=True)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"x-plane-backend-id: " + response.backend_id.encode() in answer
    assert b'"path": "/half"' in answer


async def test_socketio_websocket_through_the_proxy(
    sio_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, sio_dev, user="bob", auth={"team": 7})
    await wait_for(http, response, "ready")
    client = socketio.AsyncClient()
    welcomes: list[Any] = []
    client.on("welcome", welcomes.append)
    await client.connect(
        sio_dev.proxy_url,
        socketio_path=f"/{response.token}/socket.io",
        transports=["websocket"],
        headers={"x-verified-username": "mallory"},
        wait_timeout=10,
    )
    try:
        assert client.transport() == "websocket"
        who = await client.call("whoami", timeout=10)
        assert who["backend_id"] == response.backend_id
        assert who["headers"]["x-verified-username"] == "bob"
        assert json.loads(who["headers"]["x-verified-user-data"]) == {"team": 7}
        assert who["headers"]["x-verified-backend"] == response.backend_id
        assert await client.call("echo", ["a", 1], timeout=10) == ["a", 1]
        # Far beyond any socket buffer (flow control at work), below aiohttp's 4 MiB limit.
        big = "x" * (3 * 1024 * 1024)
        assert await client.call("echo", big, timeout=20) == big
        assert welcomes[0]["user"] == "bob"

        # The backend ending closes the proxied connection.
        gone = asyncio.Event()
        client.on("disconnect", lambda *_: gone.set())
        await terminate(http, sio_dev, response.backend_id)
        await asyncio.wait_for(gone.wait(), 5)
    finally:
        await client.disconnect()


async def test_socketio_polling_through_the_proxy(
    sio_dev: DevServer, http: aiohttp.ClientSession
) -> None:
    response = await connect(http, sio_dev, user="carol")
    client = socketio.AsyncClient()
    # Connecting before the backend is ready: the proxy holds the handshake.
    await client.connect(
        sio_dev.proxy_url,
        socketio_path=f"/{response.token}/socket.io",
        transports=["polling"],
        wait_timeout=10,
    )
    try:
        assert client.transport() == "polling"
        assert await client.call("echo", {"n": 1}, timeout=10) == {"n": 1}
        who = await client.call("whoami", timeout=10)
        assert who["headers"]["x-verified-username"] == "carol"
        pongs: asyncio.Queue[Any] = asyncio.Queue()
        client.on("pong", pongs.put_nowait)
        await client.emit("ping", "hello")
        assert await asyncio.wait_for(pongs.get(), 10) == "hello"
    finally:
        # A polite polling disconnect waits for the long poll (up to 25 s): don't.
        await client.eio.disconnect(abort=True)
