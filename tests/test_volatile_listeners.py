"""Volatile sends, ``listeners()`` and ``on_any_outgoing``, on every front end.

Against the dev server's example backend (python-socketio and Node flavours); the connection
is cut with the FaultProxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import BackgroundDevServer, DevServer
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually, eventually_sync


@pytest.fixture
async def fault(dev: DevServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(port_of(dev.proxy_url)) as proxy:
        yield proxy


async def test_volatile_sends_while_disconnected_are_dropped_and_normal_ones_arrive(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    response = through(await api.connect(), url=fault)
    async with jrt.Session(response, reconnect_delay=(0.05, 0.5)) as session:
        await session.call("reset_records")
        await session.send("record", "volatile while connected", volatile=True)
        assert await session.call("records") == ["volatile while connected"]
        fault.refuse()  # no reconnect until heal()
        fault.reset_all()
        await eventually(lambda: not session.connected, timeout=10)
        await session.send("record", "v1", volatile=True)
        await session.send("record", "n1")
        await session.send("record", "v2", volatile=True)
        await session.send("record", "n2")
        assert session.dropped_volatile == 2
        await fault.heal()
        await eventually(lambda: session.connected, timeout=15)
        records = await session.call("records")
    assert records == ["volatile while connected", "n1", "n2"]


async def test_volatile_on_an_extra_namespace_before_it_joins(dev: DevServer) -> None:
    async with (
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        jrt.Session(await api.connect()) as session,
    ):
        # Not joined yet: dropped, counted on the namespace, not on the Session.
        extra = session.namespace("/extra")
        await extra.send("anything", volatile=True)
        assert extra.dropped_volatile == 1
        assert session.dropped_volatile == 0


async def test_listeners_and_on_any_outgoing(api: jrt.Jamsocket) -> None:
    def first(*args: Any) -> None: ...

    async def second(*args: Any) -> None: ...

    sent: list[tuple[Any, ...]] = []
    async with jrt.Session(await api.connect()) as session:
        assert session.listeners("echo") == []
        remove_first = session.on("echo", first)
        session.on("echo", second)
        session.on("*", first)
        assert session.listeners("echo") == [first, second]
        assert session.listeners("*") == [first]
        remove_first()
        assert session.listeners("echo") == [second]

        stop = session.on_any_outgoing(lambda event, *args: sent.append((event, *args)))
        await session.send("record", "a", 1)
        assert await session.call("echo", {"b": 2}) == {"b": 2}
        await eventually(lambda: len(sent) == 2)
        stop()
        await session.send("record", "after")
        assert await session.call("echo", "c") == "c"
    assert sent == [("record", "a", 1), ("echo", {"b": 2})]


async def test_on_any_outgoing_sees_queued_sends_when_they_are_written(
    api: jrt.Jamsocket,
) -> None:
    sent: list[tuple[Any, ...]] = []
    session = jrt.Session(await api.connect())
    session.on_any_outgoing(lambda event, *args: sent.append((event, *args)))
    await session.send("record", "queued")  # before connect(): queued, not yet sent
    await session.send("record", "dropped", volatile=True)
    assert sent == []
    async with session:
        await eventually(lambda: sent)
    assert sent == [("record", "queued")]


async def test_an_outgoing_listener_that_raises_goes_to_on_error(api: jrt.Jamsocket) -> None:
    errors: list[BaseException] = []

    def broken(event: str, *args: Any) -> None:
        raise ValueError(f"not {event}")

    async with jrt.Session(await api.connect()) as session:
        session.on_error(errors.append)
        session.on_any_outgoing(broken)
        await session.send("record", 1)
        assert await session.call("echo", 2) == 2
        await eventually(lambda: len(errors) == 2)
    assert [str(error) for error in errors] == ["not record", "not echo"]
    with pytest.raises(TypeError, match="callback"):
        session.on_any_outgoing("not callable")  # type: ignore[arg-type]


def test_sync_session_volatile_listeners_and_outgoing(
    jamsocket_dev_server: BackgroundDevServer,
) -> None:
    sent: list[tuple[Any, ...]] = []

    def handler(*args: Any) -> None: ...

    with jrt.SyncSession(jamsocket_dev_server.connect()) as session:
        session.on("news", handler)
        assert session.listeners("news") == [handler]
        session.call("reset_records")
        stop = session.on_any_outgoing(lambda event, *args: sent.append((event, *args)))
        session.send("record", "sync", volatile=True)  # connected: written
        assert session.call("records") == ["sync"]
        eventually_sync(lambda: len(sent) == 2)
        stop()
        assert session.dropped_volatile == 0
    assert sent == [("record", "sync"), ("records",)]


async def test_volatile_keeps_the_send_queue_unchanged(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect())
    for index in range(3):
        await session.send("record", index, volatile=True)
    assert session.dropped_volatile == 3
    assert not session._outbox  # nothing waits for the connection
    await session.close()
