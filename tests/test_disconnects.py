"""Why a connection ended (``Disconnected.reason``), a server's disconnect, and the reconnect limit.

Against real peers only: the example backends (python-socketio and Node socket.io) behind the
dev server, a Node server with a tiny ping timeout behind a fault proxy that freezes traffic,
the fault proxy cutting or refusing connections, and a raw backend that sends garbage
(tests/backends/garbage.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt._errors import TransportBroke, disconnect_reason
from jamsocket_rt.dev import BackgroundDevServer, DevServer
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually, eventually_sync
from tests.helpers.sessions import reached_backend

HERE = Path(__file__).resolve().parent


class Drops:
    """What a Session's on_disconnect, on_reconnect and on_error callbacks received."""

    def __init__(self, target: jrt.Namespace) -> None:
        self.errors: list[BaseException | None] = []
        self.failures: list[BaseException] = []
        self.reconnects = 0
        target.on_disconnect(self.errors.append)
        target.on_reconnect(self._reconnected)
        target.on_error(self.failures.append)

    def _reconnected(self) -> None:
        self.reconnects += 1

    @property
    def reasons(self) -> list[str]:
        return [getattr(error, "reason", "?") for error in self.errors]


@pytest.fixture
async def fault(dev: DevServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(port_of(dev.proxy_url)) as proxy:
        yield proxy


# --------------------------------------------------------------------------- a server's disconnect


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_server_disconnect_is_not_retried_until_connect_is_called(
    api: jrt.Jamsocket, transport: Any
) -> None:
    async with jrt.Session(
        await api.connect(), transports=[transport], reconnect_delay=(0.05, 0.2)
    ) as s:
        drops = Drops(s)
        cut = asyncio.ensure_future(s.call("sleep", 5, timeout=30))
        await reached_backend(s)
        await s.send("disconnect_me")
        with pytest.raises(jrt.ConnectionLost, match="io server disconnect"):
            await asyncio.wait_for(cut, 5)
        assert drops.reasons == ["io server disconnect"]
        error = drops.errors[0]
        assert isinstance(error, jrt.Disconnected)
        assert isinstance(error, ConnectionError)
        assert isinstance(error.__cause__, ConnectionAbortedError)
        # The grace is over (the cut call failed) and nothing reconnects by itself.
        await eventually(lambda: s._reconnector is None)
        assert s.state is jrt.SessionState.KICKED
        assert not s.connected
        assert drops.reconnects == 0
        # Sends wait in the queue, as socket.io-client's sendBuffer does, for connect().
        await s.send("record", "queued while kicked")
        answered = asyncio.ensure_future(s.call("echo", "queued call", timeout=30))
        await s.connect()
        assert s.connected
        assert drops.reconnects == 1
        assert await answered == "queued call"
        assert await s.call("records") == ["queued while kicked"]
        with pytest.raises(RuntimeError, match="already called"):
            await s.connect()  # connected: connect() is for a session the server let go
        assert drops.failures == []
    assert drops.reasons == ["io server disconnect", "io client disconnect"]


def test_a_sync_session_connects_again_after_a_server_disconnect(
    jamsocket_dev_server: BackgroundDevServer,
) -> None:
    with jrt.SyncSession(jamsocket_dev_server.connect()) as s:
        drops: list[BaseException | None] = []
        s.on_disconnect(drops.append)
        s.send("disconnect_me")
        eventually_sync(lambda: s._session.state is jrt.SessionState.KICKED)
        assert [getattr(error, "reason", None) for error in drops] == ["io server disconnect"]
        s.connect()
        assert s.connected
        assert s.call("echo", "again", timeout=5) == "again"


async def test_a_namespace_hears_why_it_ended(node_namespaces: jrt.ConnectResponse) -> None:
    async with jrt.Session(node_namespaces) as session:
        admin = session.namespace("/admin")
        game = session.namespace("/game")
        await admin.wait_connected(timeout=10)
        await game.wait_connected(timeout=10)
        kicked, left = Drops(admin), Drops(game)
        gone = session.wait_for("gone", timeout=10)
        await admin.send("kick")
        await session.send("push", "gone")
        await gone
        await game.close()
        assert kicked.reasons == ["io server disconnect"]
        assert left.reasons == ["io client disconnect"]
        assert session.connected  # the Session's own namespace goes on


@pytest.fixture
async def node_namespaces(require_node: str) -> AsyncIterator[jrt.ConnectResponse]:
    backend = [require_node, str(HERE / "node" / "namespace_backend.js")]
    async with (
        DevServer(backend=backend, quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        yield await api.connect()


# --------------------------------------------------------------------------- the reasons


async def test_close_tells_io_client_disconnect(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect())
    drops = Drops(session)
    async with session:
        assert await session.call("echo", 1) == 1
    assert drops.reasons == ["io client disconnect"]
    assert isinstance(drops.errors[0], jrt.Disconnected)
    assert drops.errors[0].__cause__ is None
    await session.close()
    assert len(drops.errors) == 1, "told once"


@pytest.mark.parametrize(
    ("cut", "reason"), [("close_all", "transport close"), ("reset_all", "transport error")]
)
async def test_a_cut_tells_transport_close_or_error(
    api: jrt.Jamsocket, fault: FaultProxy, cut: str, reason: str
) -> None:
    async with jrt.Session(
        through(await api.connect(), url=fault), reconnect_delay=(0.05, 0.2)
    ) as s:
        drops = Drops(s)
        assert await s.call("echo", 1) == 1
        getattr(fault, cut)()  # FIN: closed; RST: the connection failed
        await eventually(lambda: drops.reconnects == 1)
        assert drops.reasons == [reason]
        assert isinstance(drops.errors[0], ConnectionError)
        assert await s.call("echo", 2) == 2


@pytest.mark.node
@pytest.mark.slow
async def test_a_frozen_connection_tells_ping_timeout(require_node: str) -> None:
    backend = [require_node, str(HERE / "node" / "backend.js")]
    env = {**os.environ, "PING_INTERVAL_MS": "200", "PING_TIMEOUT_MS": "200"}
    async with (
        DevServer(backend=backend, env=env, quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        FaultProxy(port_of(dev.proxy_url)) as fault,
    ):
        response = through(await api.connect(), url=fault)
        async with jrt.Session(response, connect_timeout=1, reconnect_delay=(0.05, 0.2)) as s:
            drops = Drops(s)
            assert await s.call("echo", "alive") == "alive"
            fault.blackhole()  # traffic frozen both ways, sockets open
            await eventually(lambda: drops.errors)
            assert drops.reasons == ["ping timeout"]
            error = drops.errors[0]
            assert isinstance(error, jrt.Disconnected)
            assert isinstance(error, TimeoutError)
            assert "no ping" in str(error)
            await fault.heal()
            await eventually(lambda: drops.reconnects == 1)


async def test_garbage_from_the_server_tells_parse_error() -> None:
    backend = [sys.executable, str(HERE / "backends" / "garbage.py")]
    async with DevServer(backend=backend, quiet=True) as dev:
        api = jrt.Jamsocket.dev_server(dev.api_url)
        async with api, jrt.Session(await api.connect(), reconnect_delay=(0.05, 0.2)) as s:
            drops = Drops(s)
            assert await s.call("echo", "fine") == "fine"
            await s.send("garbage")
            await eventually(lambda: drops.reconnects == 1)
            assert drops.reasons == ["parse error"]
            error = drops.errors[0]
            assert error is not None
            assert isinstance(error.__cause__, jrt.ProtocolError)
            assert await s.call("echo", "back") == "back"


# --------------------------------------------------------------------------- the reconnect limit


@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_reconnect_attempts_run_out_with_a_clear_error(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    async with jrt.Session(
        through(await api.connect(), url=fault),
        reconnect_delay=(0.01, 0.02),
        reconnect_attempts=3,
        disconnect_grace=0.01,
    ) as s:
        drops = Drops(s)
        assert await s.call("echo", 1) == 1
        fault.refuse()  # every attempt from now on is refused
        fault.reset_all()
        await eventually(lambda: drops.errors)
        waiting = asyncio.ensure_future(s.call("echo", "never", timeout=30))
        event = s.wait_for("never", timeout=30)
        with pytest.raises(jrt.ReconnectFailed) as failed:
            await asyncio.wait_for(waiting, 10)
        error = failed.value
        assert error.attempts == 3
        assert "failed 3 times in a row" in str(error)
        assert isinstance(error.__cause__, ConnectionError)
        assert type(error.__cause__).__name__ in str(error)
        with pytest.raises(jrt.ReconnectFailed):
            await event
        assert drops.failures == [error]
        assert s.state is jrt.SessionState.FAILED
        with pytest.raises(jrt.ReconnectFailed):
            await s.send("late")


@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_the_attempt_count_starts_again_after_a_reconnect(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    async with jrt.Session(
        through(await api.connect(), url=fault),
        reconnect_delay=(1.0, 1.0),  # room to heal between two attempts
        reconnect_attempts=2,
        disconnect_grace=0.01,
    ) as s:
        drops = Drops(s)
        for outage in (1, 2):
            fault.refuse()
            fault.reset_all()
            await eventually(lambda: s._failed_attempts == 1)
            await fault.heal()
            await eventually(lambda: drops.reconnects == outage)  # noqa: B023
            assert s._failed_attempts == 0
        # Two failed attempts in all, never two in a row: still alive.
        assert drops.failures == []
        assert await s.call("echo", "alive") == "alive"


# --------------------------------------------------------------------------- without a network


@pytest.mark.pure
@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionAbortedError("the server ended the connection"), "io server disconnect"),
        (TimeoutError("no ping from the server for 0.4 s"), "ping timeout"),
        (jrt.ProtocolError("undecodable data"), "parse error"),
        (ConnectionResetError("the connection was closed"), "transport close"),
        (TransportBroke("the connection failed: OSError: boom"), "transport error"),
        (RuntimeError("sending failed"), "transport error"),
        (None, "transport close"),
    ],
)
def test_each_transport_loss_has_its_reason(error: BaseException | None, reason: str) -> None:
    assert disconnect_reason(error) == reason
    told = jrt.Disconnected.of(error)
    assert told.reason == reason
    assert told.__cause__ is error
    assert reason in str(told)
    if error is not None:
        assert str(error) in str(told), "the transport's words are kept"
    assert isinstance(told, TimeoutError) == (reason == "ping timeout")
    assert jrt.Disconnected.of(told) is told


@pytest.mark.pure
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_reconnect_attempts_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"reconnect_attempts: expected a positive integer"):
        jrt.SessionOptions(reconnect_attempts=bad)
    with pytest.raises(ValueError, match=r"reconnect_attempts: expected a positive integer"):
        jrt.Session(connect=_never_called, reconnect_attempts=bad)


async def _never_called() -> jrt.ConnectResponse:
    raise AssertionError("not called")  # pragma: no cover
