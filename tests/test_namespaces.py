"""Namespaces: several Socket.IO namespaces on a Session's one connection.

Against the real Node socket.io server (tests/node/namespace_backend.js), which reports the
Engine.IO connection each socket rides on, and python-socketio's server
(tests/backends/namespaces.py), both behind the dev server's token proxy.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.polling import eventually

HERE = Path(__file__).resolve().parent
FLAVOURS = (pytest.param("node", marks=pytest.mark.node), "python")


def namespace_backend(flavour: str) -> list[str]:
    if flavour == "node":
        return [shutil.which("node") or "node", str(HERE / "node" / "namespace_backend.js")]
    return [sys.executable, str(HERE / "backends" / "namespaces.py")]


@pytest.fixture(scope="module", params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    if value == "node":
        request.getfixturevalue("require_node")
    return value


@pytest.fixture
async def response(flavour: str) -> AsyncIterator[jrt.ConnectResponse]:
    async with (
        DevServer(backend=namespace_backend(flavour), quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        yield await api.connect()


async def test_two_namespaces_share_one_engine_io_connection(
    flavour: str, response: jrt.ConnectResponse
) -> None:
    async with jrt.Session(response) as session:
        admin = session.namespace("/admin", auth={"role": "admin"})
        assert isinstance(admin, jrt.Namespace)
        assert session.namespace("/admin") is admin
        assert session.namespace("/") is session
        await admin.wait_connected(timeout=10)
        root: dict[str, Any] = await session.call("whoami")
        mine: dict[str, Any] = await admin.call("whoami")
        assert root["nsp"] == "/"
        assert mine["nsp"] == "/admin"
        assert mine["auth"] == {"role": "admin"}
        assert admin.sid == mine["sid"]
        assert session.sid == root["sid"]
        assert admin.connected
        if flavour == "node":
            # One Engine.IO connection, as the server sees it.
            assert mine["engine"] == root["engine"]
            assert mine["engines"] == 1


async def test_events_reach_only_their_namespace(response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response) as session:
        admin = session.namespace("/admin")
        seen_root: list[Any] = []
        seen_admin: list[Any] = []
        session.on("news", seen_root.append)
        admin.on("news", seen_admin.append)
        waiting = admin.wait_for("news", timeout=10)
        await admin.send("push", "news", "for admin")
        assert await waiting == "for admin"
        waiting = session.wait_for("news", timeout=10)
        await session.send("push", "news", "for root")
        assert await waiting == "for root"
        assert seen_admin == ["for admin"]
        assert seen_root == ["for root"]


async def test_sends_before_the_namespace_joins_are_queued_in_order(
    response: jrt.ConnectResponse,
) -> None:
    async with jrt.Session(response) as session:
        game = session.namespace("/game")
        calls = [game.call("echo", index) for index in range(5)]
        assert [await call for call in calls] == [0, 1, 2, 3, 4]


async def test_session_of_another_namespace(response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response, namespace="/game") as session:
        who: dict[str, Any] = await session.call("whoami")
        assert who["nsp"] == "/game"
        assert session.name == "/game"


async def test_a_refused_namespace_raises_connect_refused_with_the_servers_data(
    response: jrt.ConnectResponse,
) -> None:
    async with jrt.Session(response) as session:
        locked = session.namespace("/locked")
        pending = locked.call("echo", 1)
        with pytest.raises(jrt.ConnectRefused, match="locked") as refused:
            await locked.wait_connected(timeout=10)
        assert "403" in repr(refused.value.data)
        with pytest.raises(jrt.ConnectRefused):
            await pending
        with pytest.raises(jrt.ConnectRefused):
            await locked.send("echo")
        # The rest of the session is unaffected.
        assert await session.call("echo", "still here") == "still here"


async def test_a_session_refused_its_own_namespace_raises(response: jrt.ConnectResponse) -> None:
    session = jrt.Session(response, namespace="/locked")
    with pytest.raises(jrt.ConnectRefused, match="locked"):
        await session.connect()
    assert session.closed


async def test_packets_for_a_namespace_nobody_opened_are_dropped_and_counted(
    flavour: str, response: jrt.ConnectResponse
) -> None:
    if flavour != "node":
        pytest.skip("python-socketio's server has no way to write a raw packet")
    async with jrt.Session(response) as session:
        admin = session.namespace("/admin")
        await admin.wait_connected(timeout=10)
        after = session.wait_for("after_ghost", timeout=10)
        await session.send("ghost")
        await after
        assert session.dropped_packets == 1
        # Nothing is lost from an open namespace.
        assert await admin.call("echo", "fine") == "fine"


async def test_the_server_ending_one_namespace_leaves_the_others(
    flavour: str, response: jrt.ConnectResponse
) -> None:
    if flavour != "node":
        pytest.skip("the python backend has no kick event")
    async with jrt.Session(response) as session:
        admin = session.namespace("/admin")
        await admin.wait_connected(timeout=10)
        dropped: list[BaseException | None] = []
        admin.on_disconnect(dropped.append)
        gone = session.wait_for("gone", timeout=10)
        await admin.send("kick")
        await session.send("push", "gone")
        await gone
        with pytest.raises(jrt.ConnectionLost):
            await admin.call("echo", 1, timeout=5)
        assert len(dropped) == 1
        assert not admin.connected
        assert await session.call("echo", "root") == "root"


async def test_namespaces_rejoin_after_the_connection_drops(
    flavour: str, response: jrt.ConnectResponse
) -> None:
    if flavour != "node":
        pytest.skip("the python backend has no kick event")
    async with jrt.Session(response, disconnect_grace=0.01) as session:
        admin = session.namespace("/admin")
        await admin.wait_connected(timeout=10)
        first: dict[str, Any] = await admin.call("whoami")
        rejoined = admin.wait_for("rejoined", timeout=10)
        admin.on_reconnect(lambda: None)
        # The server disconnecting the Session's own namespace ends the connection; since
        # issue 12 the Session does not reconnect by itself ("io server disconnect", as
        # socket.io-client): connect() does, and /admin sends its CONNECT again.
        await session.send("kick")
        await eventually(lambda: session.state is jrt.SessionState.KICKED)
        await session.connect()
        second: dict[str, Any] = await admin.call("whoami", retry=True, timeout=10)
        assert second["engine"] != first["engine"]
        assert second["sid"] != first["sid"]
        await admin.send("push", "rejoined")
        await rejoined


async def test_closing_a_namespace_keeps_the_session(response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response) as session:
        async with session.namespace("/admin") as admin:
            assert await admin.call("echo", 1) == 1
        assert admin.closed
        with pytest.raises(jrt.SessionClosed):
            await admin.send("echo")
        assert await session.call("echo", 2) == 2


async def test_bad_namespace_names_are_refused(response: jrt.ConnectResponse) -> None:
    session = jrt.Session(response)
    with pytest.raises(ValueError, match="namespace"):
        session.namespace("admin")
    with pytest.raises(ValueError, match="namespace"):
        session.namespace("/a,b")
    with pytest.raises(ValueError, match="namespace"):
        jrt.Session(response, namespace="game")
    await session.close()


async def test_namespaces_over_long_polling(flavour: str, response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response, transports=("polling",)) as session:
        admin = session.namespace("/admin", auth={"role": "admin"})
        await admin.wait_connected(timeout=10)
        mine: dict[str, Any] = await admin.call("whoami")
        root: dict[str, Any] = await session.call("whoami")
        assert mine["nsp"] == "/admin"
        assert mine["auth"] == {"role": "admin"}
        assert admin.sid == mine["sid"]
        if flavour == "node":
            assert mine["engine"] == root["engine"]
        waiting = admin.wait_for("news", timeout=10)
        await admin.send("push", "news", "polled")
        assert await waiting == "polled"
        locked = session.namespace("/locked")
        with pytest.raises(jrt.ConnectRefused, match="locked"):
            await locked.wait_connected(timeout=10)
        await admin.close()
        assert await session.call("echo", "root") == "root"


async def test_a_polling_session_of_another_namespace(response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response, namespace="/game", transports=("polling",)) as session:
        who: dict[str, Any] = await session.call("whoami")
        assert who["nsp"] == "/game"


def test_a_blocking_session_opens_a_namespace_once_connected(flavour: str) -> None:
    if flavour != "python":
        pytest.skip("one flavour is enough for the blocking front end")
    from jamsocket_rt.dev import BackgroundDevServer

    with BackgroundDevServer(namespace_backend(flavour), quiet=True) as dev:
        response = dev.connect()
        session = jrt.SyncSession(response)
        game = session.namespace("/game")  # not connected yet: it joins on connect
        with session:
            admin = session.namespace("/admin")  # connected: it joins now
            assert admin.call("echo", "hi", timeout=10) == "hi"
            assert game.call("echo", 1, timeout=10) == 1
