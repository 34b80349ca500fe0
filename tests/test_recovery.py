"""Connection state recovery (Socket.IO 4.6+): a cut loses nothing the server emitted.

Against the real Node socket.io server with ``connectionStateRecovery`` on and off
(tests/node/recovery_backend.js, which emits a numbered ``tick`` every 10 ms), behind the dev
server's token proxy and a :class:`~faultproxy.FaultProxy` that cuts the connection. The sans-I/O
rules (the CONNECT payload, the pid, the offsets taken off the events) are tested on
:class:`ClientProtocol` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import BackgroundDevServer, DevServer
from jamsocket_rt.protocol.recovery import Recovery
from jamsocket_rt.protocol.socketio import Ack, ClientProtocol, Connected, Event
from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.websocket import WebSocketTransport
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.transport_peers import TOKEN_PATH, python_peer

HERE = Path(__file__).resolve().parent
BACKEND = HERE / "node" / "recovery_backend.js"

OPEN = '0{"sid":"e1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


@attrs.frozen
class Point:
    x: int
    y: int


# ----------------------------------------------------------------------------- sans I/O


def connect_payload(proto: ClientProtocol) -> Any:
    """The payload of the CONNECT the protocol asked to send (after the server's OPEN)."""
    frames = proto.data_to_send()
    text = frames[-1][1].decode()
    assert text.startswith("40")
    body = text[2:]
    if body.startswith("/"):
        body = body.split(",", 1)[1]
    return json.loads(body) if body else None


@pytest.mark.pure
def test_the_connect_carries_no_pid_until_the_server_gave_one() -> None:
    recovery = Recovery()
    proto = ClientProtocol(auth={"user": "bot"}, recovery=recovery)
    proto.receive_text(OPEN)
    assert connect_payload(proto) == {"user": "bot"}
    [connected] = proto.receive_text('40{"sid":"s1"}')
    assert connected == Connected("s1", "/", None, False)
    # No pid: the server has recovery off and appends no offset; nothing is taken.
    [event] = proto.receive_text('42["tick","a string"]')
    assert event == Event("tick", ["a string"])
    assert recovery.pid is None
    assert recovery.offset is None


@pytest.mark.pure
def test_offsets_are_recorded_and_taken_off_events_never_acks() -> None:
    recovery = Recovery()
    proto = ClientProtocol(recovery=recovery)
    proto.receive_text(OPEN)
    [connected] = proto.receive_text('40{"sid":"s1","pid":"p1"}')
    assert connected == Connected("s1", "/", "p1", False)  # a first connect recovers nothing
    assert proto.receive_text('42["tick",1,"off1"]') == [Event("tick", [1])]
    assert recovery.offset == "off1"
    assert proto.receive_text('42["one","a string","off2"]') == [Event("one", ["a string"])]
    assert recovery.offset == "off2"
    # An event with an ack id carries no offset (the server stores none): left whole.
    assert proto.receive_text('427["ask","keep"]') == [Event("ask", ["keep"], 7)]
    # Acks are never touched.
    assert proto.receive_text('433["x"]') == [Ack(3, ["x"])]
    # No string last: nothing to take (an event emitted before recovery was on, say).
    assert proto.receive_text('42["n",5]') == [Event("n", [5])]
    assert recovery.offset == "off2"
    # socket.io-client cannot tell an offset from a volatile emit's last string argument
    # (volatile events get none), and neither can we: it is taken as the offset.
    assert proto.receive_text('42["v","last"]') == [Event("v", [])]
    assert recovery.offset == "last"


@pytest.mark.pure
def test_a_reconnect_sends_pid_and_offset_merged_into_auth_and_recognises_its_pid() -> None:
    recovery = Recovery()
    recovery.pid, recovery.offset = "p1", "off9"
    proto = ClientProtocol(auth={"user": "bot", "offset": "mine"}, recovery=recovery)
    proto.receive_text(OPEN)
    # socket.io-client's Object.assign({pid, offset}, auth): the auth's own keys win.
    assert connect_payload(proto) == {"pid": "p1", "offset": "mine", "user": "bot"}
    # A recovering server replays the missed events before its CONNECT answer.
    assert proto.receive_text('42["tick",10,"off10"]') == []
    events = proto.receive_text('40{"sid":"s1","pid":"p1"}')
    assert events == [Connected("s1", "/", "p1", True), Event("tick", [10])]
    assert recovery.recovered
    assert recovery.offset == "off10"


@pytest.mark.pure
def test_without_an_offset_only_the_pid_is_sent_and_a_new_pid_forgets_the_old_offset() -> None:
    recovery = Recovery()
    recovery.pid = "p1"
    proto = ClientProtocol(recovery=recovery)
    proto.receive_text(OPEN)
    assert connect_payload(proto) == {"pid": "p1"}  # as socket.io-client: offset undefined
    recovery.offset = "stale"
    [connected] = proto.receive_text('40{"sid":"s2","pid":"p2"}')
    assert connected == Connected("s2", "/", "p2", False)
    assert state(recovery) == ("p2", None, False)
    # A server that answers without a pid (recovery turned off) ends the tracking.
    proto2 = ClientProtocol(recovery=recovery)
    proto2.receive_text(OPEN)
    assert connect_payload(proto2) == {"pid": "p2"}
    proto2.receive_text('40{"sid":"s3"}')
    assert recovery.pid is None
    assert proto2.receive_text('42["e","kept"]') == [Event("e", ["kept"])]


@pytest.mark.pure
def test_each_namespace_has_its_own_pid_and_offset() -> None:
    root, extra = Recovery(), Recovery()
    extra.pid, extra.offset = "px", "ox"
    proto = ClientProtocol(recovery=root)
    proto.receive_text(OPEN)
    assert connect_payload(proto) is None
    proto.receive_text('40{"sid":"s1","pid":"pr"}')
    proto.connect_namespace("/extra", {"k": 1}, extra)
    assert connect_payload(proto) == {"pid": "px", "offset": "ox", "k": 1}
    assert proto.receive_text('42/extra,["tick",4,"ox4"]') == []  # before the answer
    events = proto.receive_text('40/extra,{"sid":"sx","pid":"px"}')
    assert events == [Connected("sx", "/extra", "px", True), Event("tick", [4], None, "/extra")]
    assert proto.receive_text('42/extra,["tick",5,"ox5"]') == [Event("tick", [5], None, "/extra")]
    assert proto.receive_text('42["tick",1,"or1"]') == [Event("tick", [1])]
    assert (root.offset, extra.offset) == ("or1", "ox5")
    # A binary event carries its offset as the last argument too.
    assert proto.receive_text('451-["bin",{"_placeholder":true,"num":0},"or2"]') == []
    assert proto.receive_bytes(b"\x01") == [Event("bin", [b"\x01"])]
    assert root.offset == "or2"


@pytest.mark.pure
def test_a_malformed_pid_is_no_pid() -> None:
    recovery = Recovery()
    assert recovery.connected({"sid": "s", "pid": 5}) is None
    assert recovery.connected({"sid": "s", "pid": ""}) is None
    assert recovery.connected("not a dict") is None
    assert not recovery.recovered
    assert "p-secret" not in repr(_with_pid("p-secret"))


def state(recovery: Recovery) -> tuple[Any, ...]:
    return (recovery.pid, recovery.offset, recovery.recovered)


def _with_pid(pid: str) -> Recovery:
    recovery = Recovery()
    recovery.pid = pid
    return recovery


# ----------------------------------------------------------------------------- the real server


@contextlib.asynccontextmanager
async def recovery_server(*flags: str) -> AsyncIterator[tuple[jrt.ConnectResponse, FaultProxy]]:
    """The Node backend with ``flags``, behind the dev server and a fault proxy."""
    node = shutil.which("node") or "node"
    async with (
        DevServer(backend=[node, str(BACKEND), *flags], quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        FaultProxy(port_of(dev.proxy_url)) as fault,
    ):
        yield through(await api.connect(), url=fault), fault


class Reconnects:
    """What a namespace's on_reconnect hook saw: (recovered, sid) at each reconnect."""

    def __init__(self, namespace: jrt.Namespace) -> None:
        self.seen: list[tuple[bool, str | None]] = []
        self.disconnects = 0
        namespace.on_reconnect(lambda: self.seen.append((namespace.recovered, namespace.sid)))
        namespace.on_disconnect(lambda error: self._disconnected())

    def _disconnected(self) -> None:
        self.disconnects += 1


async def cut_and_wait(
    fault: FaultProxy, reconnects: Reconnects, ticks: list[int], *, refuse: float
) -> None:
    """Cuts every connection, keeps the path closed ``refuse`` seconds, waits for the
    reconnect and then for 30 more ticks."""
    fault.reset_all()
    fault.refuse(refuse)
    await eventually(lambda: reconnects.seen, timeout=15)
    count = len(ticks)
    await eventually(
        lambda: len(ticks) >= count + 30,
        message=lambda: f"{len(ticks) - count} ticks since {reconnects.seen}",
    )


def contiguous(ticks: list[int]) -> bool:
    return ticks == list(range(ticks[0], ticks[0] + len(ticks)))


@pytest.mark.node
@pytest.mark.slow
async def test_a_cut_with_recovery_on_loses_no_tick_and_keeps_the_socket_id(
    require_node: str,
) -> None:
    async with (
        recovery_server("--recovery", "on") as (response, fault),
        jrt.Session(response, reconnect_delay=(0.05, 0.5)) as s,
    ):
        ticks: list[int] = []
        s.on("tick", ticks.append, type=int)  # typed: the offset must not reach it
        reconnects = Reconnects(s)
        await s.call("subscribe")
        sid = s.sid
        assert sid is not None
        assert not s.recovered
        await eventually(lambda: len(ticks) >= 10)
        await cut_and_wait(fault, reconnects, ticks, refuse=0.5)
        who: dict[str, Any] = await s.call("whoami")
    assert reconnects.seen == [(True, sid)]
    assert s.recovered
    assert who["recovered"] is True
    assert who["sid"] == sid
    # Ticks were emitted while the client was away, and every one of them arrived.
    assert who["disconnected_at"] is not None
    assert who["connected_at"] - who["disconnected_at"] >= 5, who
    assert ticks[0] <= who["disconnected_at"]
    assert ticks[-1] >= who["connected_at"]
    assert contiguous(ticks), "every tick exactly once, in order"


@pytest.mark.node
@pytest.mark.slow
@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--recovery", "off"), id="recovery-off"),
        pytest.param(("--recovery", "on", "--max-disconnection", "100"), id="cut-too-long"),
    ],
)
async def test_an_unrecovered_cut_says_so_and_the_gap_is_real(
    require_node: str, flags: tuple[str, ...]
) -> None:
    async with (
        recovery_server(*flags) as (response, fault),
        jrt.Session(response, reconnect_delay=(0.05, 0.5)) as s,
    ):
        ticks: list[int] = []
        s.on("tick", ticks.append)
        reconnects = Reconnects(s)
        # The documented way to notice a gap: recovered is False in on_reconnect (a fresh
        # socket: subscribe again).

        async def resubscribe() -> None:
            if not s.recovered:
                await s.send("subscribe")

        s.on_reconnect(resubscribe)
        await s.call("subscribe")
        sid = s.sid
        await eventually(lambda: len(ticks) >= 10)
        await cut_and_wait(fault, reconnects, ticks, refuse=1.0)
        who: dict[str, Any] = await s.call("whoami")
    [(recovered, new_sid)] = reconnects.seen
    assert not recovered
    assert not s.recovered
    assert who["recovered"] is False
    assert new_sid != sid
    assert not contiguous(ticks), "the ticks of the cut are lost"
    assert all(b > a for a, b in itertools.pairwise(ticks)), "but nothing twice or out of order"


@pytest.mark.node
@pytest.mark.slow
async def test_a_cut_before_any_event_sends_the_pid_only_and_is_not_recovered(
    require_node: str,
) -> None:
    async with (
        recovery_server() as (response, fault),
        jrt.Session(response, auth={"user": "bot"}, reconnect_delay=(0.05, 0.5)) as s,
    ):
        reconnects = Reconnects(s)
        first: dict[str, Any] = await s.call("whoami")  # an acknowledgement: no offset
        assert first["auth"] == {"user": "bot"}
        fault.reset_all()
        await eventually(lambda: reconnects.seen, timeout=15)
        again: dict[str, Any] = await s.call("whoami")
    # socket.io-client sends {pid} (its offset is undefined), which the server cannot restore.
    assert set(again["auth"]) == {"pid", "user"}
    assert again["auth"]["user"] == "bot"
    assert again["recovered"] is False
    assert again["sid"] != first["sid"]
    assert reconnects.seen == [(False, again["sid"])]


@pytest.mark.node
@pytest.mark.slow
async def test_an_extra_namespace_recovers_on_its_own(require_node: str) -> None:
    async with (
        recovery_server() as (response, fault),
        jrt.Session(response, reconnect_delay=(0.05, 0.5)) as s,
    ):
        extra = s.namespace("/extra")
        root_ticks: list[int] = []
        extra_ticks: list[int] = []
        s.on("tick", root_ticks.append)
        stream = extra.stream("tick", type=int)
        reconnects = Reconnects(extra)
        await extra.wait_connected(timeout=10)
        await s.call("subscribe")
        await extra.call("subscribe")
        sid = extra.sid

        async def consume() -> None:
            async for tick in stream:
                extra_ticks.append(tick)

        async with asyncio_task(consume()):
            await eventually(lambda: len(extra_ticks) >= 10)
            await cut_and_wait(fault, reconnects, extra_ticks, refuse=0.5)
            who: dict[str, Any] = await extra.call("whoami")
    assert reconnects.seen == [(True, sid)]
    assert extra.recovered
    assert s.recovered
    assert who["connected_at"] - who["disconnected_at"] >= 5, who
    assert contiguous(extra_ticks)
    assert contiguous(root_ticks)


@pytest.mark.node
@pytest.mark.parametrize("recovery", ["on", "off"])
async def test_handlers_see_the_events_as_emitted_with_recovery_on_or_off(
    require_node: str, recovery: str
) -> None:
    async with (
        recovery_server("--recovery", recovery) as (response, _),
        jrt.Session(response) as s,
    ):
        plain: list[tuple[Any, ...]] = []
        catch_all: list[tuple[Any, ...]] = []
        points: list[Point] = []
        s.on("data", lambda *args: plain.append(args))
        s.on("*", lambda *args: catch_all.append(args))
        s.on("point", points.append, type=Point)
        s.on("ask", lambda word: word.upper())  # answers the server's acknowledged event

        waiting = s.wait_for("data", timeout=10)
        await s.send("push", "data", 1, "two", {"x": 3})
        assert await waiting == (1, "two", {"x": 3})
        one = s.wait_for("one", timeout=10)
        await s.send("push", "one", "a string last")
        assert await one == "a string last"
        typed = s.wait_for("point", timeout=10, type=Point)
        await s.send("push", "point", {"x": 1, "y": 2})
        assert await typed == Point(1, 2)
        stream = s.stream("n", type=int)
        for n in range(3):
            await s.send("push", "n", n)
        assert [await anext(stream) for _ in range(3)] == [0, 1, 2]
        # An event the server wants acknowledged has no offset; its last string stays.
        acked = s.wait_for("acked", timeout=10)
        await s.send("push_acked", "ask", "keep")
        assert await acked == ["KEEP"]
        # A volatile event has no offset either; a non-string last argument arrives whole.
        volatile = s.wait_for("v", timeout=10)
        await s.send("push_volatile", "v", "a", 1)
        assert await volatile == ("a", 1)
        assert s.recovered is False
    assert plain == [(1, "two", {"x": 3})]
    assert points == [Point(1, 2)]
    assert ("data", 1, "two", {"x": 3}) in catch_all
    assert ("one", "a string last") in catch_all


@pytest.mark.node
async def test_polling_cannot_recover_but_takes_the_offsets_off_too(require_node: str) -> None:
    async with (
        recovery_server() as (response, fault),
        jrt.Session(response, transports=["polling"], reconnect_delay=(0.05, 0.5)) as s,
    ):
        reconnects = Reconnects(s)
        ticks: list[int] = []
        s.on("tick", ticks.append, type=int)
        s.on_reconnect(lambda: s.send("subscribe"))
        one = s.wait_for("one", timeout=10)
        await s.send("push", "one", "a string last")
        assert await one == "a string last"
        await s.call("subscribe")
        await eventually(lambda: len(ticks) >= 10)
        sid = s.sid
        fault.reset_all()
        # Long-polling opens a request per poll: a reset that falls between two polls cuts
        # nothing, so the path stays closed a moment for the next poll to fail.
        fault.refuse(0.5)
        await eventually(lambda: reconnects.seen, timeout=15)
        who: dict[str, Any] = await s.call("whoami")
    assert reconnects.seen == [(False, who["sid"])]
    assert who["sid"] != sid
    assert "pid" not in (who["auth"] or {})


@contextlib.asynccontextmanager
async def asyncio_task(coro: Any) -> AsyncIterator[None]:
    """Runs ``coro`` in a task for the block's duration (cancelled at its end)."""
    task = asyncio.ensure_future(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ----------------------------------------------------------------------------- held-back events


async def test_events_held_until_connect_returned_go_before_a_loss_in_that_instant() -> None:
    """Their offsets are recorded when they are decoded: a loss noticed before they were
    released must not drop them (the websocket transport holds events back until connect()
    has returned)."""
    told: list[str] = []

    class Listener:
        def transport_event(self, event: str, args: list[Any], ack: Any) -> None:
            told.append(event)

        def transport_lost(self, error: BaseException | None) -> None:
            told.append("lost")

    with python_peer() as origin:
        transport = WebSocketTransport()
        await transport.connect(
            ConnectTarget(origin, socketio_path=TOKEN_PATH, connect_timeout=5.0), Listener()
        )
        try:
            # python-socketio's server emits "welcome" before its CONNECT answer: it is held
            # back until the loop runs again.
            assert transport._held
            assert told == []
            transport._lose(ConnectionResetError("cut in the same loop iteration"))
            assert told == ["welcome", "lost"]
        finally:
            await transport.close()


@pytest.mark.node
def test_the_blocking_twins_say_recovered_too(require_node: str) -> None:
    node = shutil.which("node") or "node"
    with (
        BackgroundDevServer([node, str(BACKEND)], quiet=True) as dev,
        jrt.SyncSession(dev.connect()) as s,
    ):
        # (SyncSession is a SyncNamespace: this is the namespaces' property too)
        assert s.call("whoami")["recovered"] is False
        assert s.recovered is False
