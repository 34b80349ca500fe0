"""parser="msgpack" against real servers, on both transports.

The Node socket.io server with ``parser: require("socket.io-msgpack-parser")``
(tests/node/msgpack_backend.js) and python-socketio's ``AsyncServer(serializer="msgpack")``
(tests/backends/msgpack_backend.py), each behind the dev server's token proxy. The sans-I/O
codec and protocol are tested in tests/test_msgpack_codec.py.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from jamsocket_rt.protocol.engineio import ProtocolError
from jamsocket_rt.protocol.options import TransportName
from tests.helpers.paths import NODE_MODULES

HERE = Path(__file__).resolve().parent
FLAVOURS = (pytest.param("node", marks=pytest.mark.node), "python")
TRANSPORTS: tuple[TransportName, ...] = ("websocket", "polling")


def msgpack_backend(flavour: str) -> list[str]:
    if flavour == "node":
        return [shutil.which("node") or "node", str(HERE / "node" / "msgpack_backend.js")]
    return [sys.executable, str(HERE / "backends" / "msgpack_backend.py")]


@pytest.fixture(scope="module", params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    if value == "node":
        request.getfixturevalue("require_node")
        if not (NODE_MODULES / "socket.io-msgpack-parser" / "package.json").is_file():
            pytest.skip("tests/node/node_modules lacks socket.io-msgpack-parser: run `npm ci`")
    return value


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> TransportName:
    value: TransportName = request.param
    return value


@pytest.fixture
async def response(flavour: str) -> AsyncIterator[jrt.ConnectResponse]:
    async with (
        DevServer(backend=msgpack_backend(flavour), quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        yield await api.connect()


def session(response: jrt.ConnectResponse, transport: TransportName, **options: Any) -> jrt.Session:
    return jrt.Session(response, parser="msgpack", transports=(transport,), **options)


async def test_calls_and_events_with_binary_payloads(
    response: jrt.ConnectResponse, transport: TransportName
) -> None:
    args = (1, "two", None, [True, 2.5], b"\x00\x01\xff", {"nested": [b"x", {"deep": b"y"}]})
    async with session(response, transport) as s:
        who: dict[str, Any] = await s.call("whoami")
        assert who["transport"] == transport
        assert await s.call("echo", *args) == args
        # The server saw the bytes as bytes (msgpack bin), wherever they were nested.
        seen = await s.call("describe", b"ab", {"n": [b"c"]}, "text")
        assert seen == ["<binary 2>", {"n": ["<binary 1>"]}, "text"]
        pushed = s.wait_for("news", timeout=10)
        await s.send("push", "news", b"\x07", {"k": [b"\x08"]})
        assert await pushed == (b"\x07", {"k": [b"\x08"]})
        binary = s.wait_for("binary", timeout=10)
        await s.send("binary")
        assert await binary == (bytes([0, 1, 2, 255]), {"nested": [b"hi"]})


async def test_server_events_with_acks(
    response: jrt.ConnectResponse, transport: TransportName
) -> None:
    async with session(response, transport) as s:
        s.on("question", lambda *args: ["yes", *args])
        s.on("silent", lambda *args: None)
        answer = s.wait_for("answer", timeout=10)
        await s.send("ask", "question", 1, b"\x09", {"b": [b"\x0a"]})
        assert await answer == [["yes", 1, b"\x09", {"b": [b"\x0a"]}]]
        answer = s.wait_for("answer", timeout=10)
        await s.send("ask", "silent", 2)
        assert await answer == []  # no answer: an acknowledgement without arguments


async def test_extra_namespaces(response: jrt.ConnectResponse, transport: TransportName) -> None:
    async with session(response, transport) as s:
        admin = s.namespace("/admin", auth={"role": "admin"})
        await admin.wait_connected(timeout=10)
        mine: dict[str, Any] = await admin.call("whoami")
        assert mine["nsp"] == "/admin"
        assert mine["auth"] == {"role": "admin"}
        assert admin.sid == mine["sid"]
        assert await admin.call("echo", b"bin") == b"bin"
        news = admin.wait_for("news", timeout=10)
        await admin.send("push", "news", b"for admin")
        assert await news == b"for admin"
        locked = s.namespace("/locked")
        with pytest.raises(jrt.ConnectRefused, match="locked") as refused:
            await locked.wait_connected(timeout=10)
        assert "403" in repr(refused.value.data)
        await admin.close()
        assert await s.call("echo", "root") == "root"


async def test_a_session_of_another_namespace(
    response: jrt.ConnectResponse, transport: TransportName
) -> None:
    async with session(response, transport, namespace="/admin") as s:
        who: dict[str, Any] = await s.call("whoami")
        assert who["nsp"] == "/admin"


async def test_nodes_undefined_arrives_as_none(
    flavour: str, response: jrt.ConnectResponse, transport: TransportName
) -> None:
    if flavour != "node":
        pytest.skip("only JavaScript has undefined")
    async with session(response, transport) as s:
        assert await s.call("undefined") == (None, {"a": None, "b": 1})


async def test_a_malformed_packet_ends_only_that_connection(response: jrt.ConnectResponse) -> None:
    # The fast transport decodes msgpack itself (python-socketio does it for polling).
    dropped: list[BaseException | None] = []
    async with session(response, "websocket", disconnect_grace=0.01) as s:
        s.on_disconnect(dropped.append)
        first: dict[str, Any] = await s.call("whoami")
        await s.send("malformed")
        second: dict[str, Any] = await s.call("whoami", retry=True, timeout=10)
        assert second["sid"] != first["sid"]  # a new connection, the same session
        [error] = dropped
        assert isinstance(error, jrt.Disconnected)
        assert error.reason == "parse error"
        assert isinstance(error.__cause__, ProtocolError)
        assert "not MessagePack" in str(error)


async def test_a_json_session_cannot_connect_to_a_msgpack_server(
    response: jrt.ConnectResponse,
) -> None:
    # The server refuses the text CONNECT (Node closes the connection, python-socketio ignores
    # it): the client cannot tell why, but it fails, within connect_timeout.
    s = jrt.Session(response, reconnect=False, connect_timeout=2)
    with pytest.raises((ConnectionError, TimeoutError)):
        await s.connect()
    await s.close()


async def test_sync_session(response: jrt.ConnectResponse, transport: TransportName) -> None:
    def blocking() -> Any:
        with jrt.SyncSession(response, parser="msgpack", transports=(transport,)) as s:
            return s.call("echo", b"sync", {"b": b"\x00"})

    # Off the test's loop, which runs the dev server.
    assert await asyncio.to_thread(blocking) == (b"sync", {"b": b"\x00"})
