"""The Session against the dev server, with the Python and the Node example backends."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.asyncio import status as status_hub
from jamsocket_rt.dev import DevServer
from tests.helpers.peers import NodeClient
from tests.helpers.polling import eventually
from tests.helpers.sessions import reached_backend
from tests.helpers.tasks import client_tasks


async def test_first_events_reach_listeners_registered_before_connect(api: jrt.Jamsocket) -> None:
    response = await api.connect()
    session = jrt.Session(response)
    welcomes: list[Any] = []
    session.on("welcome", welcomes.append)
    async with session:
        await eventually(lambda: welcomes, message="the welcome emitted on connection was lost")
        assert len(welcomes) == 1, "the welcome emitted on connection was lost"
        assert welcomes[0]["backend_id"] == response.backend_id
        assert session.ready
        assert session.connected
        assert session.backend_id == response.backend_id


async def test_send_call_wait_for_stream(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        assert await s.call("echo", "one") == "one"
        assert await s.call("echo", 1, "two", [3]) == (1, "two", [3])
        assert await s.call("echo") is None
        big = "x" * 16384
        assert await s.call("echo", {"big": big}) == {"big": big}

        pong = s.wait_for("pong", timeout=5)  # listening from the call, not the await
        arrived = s.wait_for("pong", timeout=5)  # (both are answered by the same pong)
        await s.send("ping", {"n": 1})
        await arrived  # the pong has come before `pong` is awaited
        assert await pong == {"n": 1}

        stream = s.stream("tick")
        assert await s.call("emit_many", {"event": "tick", "count": 50, "payload": "p"}) == 50
        got = [(await stream.__anext__())["i"] for _ in range(50)]
        assert got == list(range(50))
        await stream.aclose()

        answers = await asyncio.gather(*(s.call("echo", i) for i in range(200)))
        assert answers == list(range(200)), "concurrent calls must each get their own answer"


async def test_status_walk_hooks_and_ready(api: jrt.Jamsocket) -> None:
    response = await api.connect()
    session = jrt.Session(response)
    seen: list[str] = []
    ready_calls: list[bool] = []
    session.on_status(lambda state: seen.append(str(state.status)))
    session.on_ready(lambda: ready_calls.append(True))
    async with session:
        await eventually(lambda: ready_calls)
    assert seen[-1] == "ready"
    assert seen == sorted(set(seen), key=seen.index), "no status may repeat"
    order = ["scheduled", "loading", "starting", "waiting", "ready"]
    assert [s for s in order if s in seen] == seen
    assert ready_calls == [True]


async def test_sends_before_ready_are_queued_in_order(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect())
    for seq in range(100):
        await session.send("record", seq)
    async with session:
        assert await session.call("records") == list(range(100))


async def test_unserializable_send_raises_before_queueing(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect())
    with pytest.raises(TypeError, match="not JSON-serializable"):
        await session.send("record", object())
    async with session:
        with pytest.raises(TypeError):
            await session.send("record", {1, 2})
        await session.send("record", "after")
        assert await session.call("records") == ["after"]


async def test_terminate_fires_on_terminated_and_fails_waiters(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        ended: list[jrt.BackendState] = []
        s.on_terminated(ended.append)
        slow = asyncio.ensure_future(s.call("sleep", 30, timeout=None))
        waiting = asyncio.ensure_future(s.wait_for("never"))
        await reached_backend(s)
        assert s.backend_id is not None
        await api.terminate(s.backend_id)
        with pytest.raises(jrt.BackendTerminated) as info:
            await asyncio.wait_for(slow, 10)
        assert info.value.state is not None
        assert info.value.state.is_terminated
        with pytest.raises(jrt.BackendTerminated):
            await waiting
        await eventually(lambda: ended)
        assert len(ended) == 1
        assert s.terminated is not None
        assert not s.connected
        with pytest.raises(jrt.BackendTerminated):
            await s.send("ping")


async def test_backend_crash_reports_exit_error(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        ended = asyncio.get_running_loop().create_future()
        s.on_terminated(ended.set_result)
        await s.send("exit", 3)
        state = await asyncio.wait_for(ended, 2.5)
        assert state.exit_error is True


async def test_sessions_on_one_backend_share_one_status_stream(api: jrt.Jamsocket) -> None:
    first = await api.connect(key="room")
    second = await api.connect(key="room")
    assert first.backend_id == second.backend_id
    before = len(status_hub._watchers)
    async with jrt.Session(first) as a, jrt.Session(second) as b:
        assert len(status_hub._watchers) == before + 1
        got = asyncio.ensure_future(b.wait_for("broadcast", timeout=5))
        await a.send("broadcast", "hi")
        assert await got == "hi"
    await eventually(lambda: len(status_hub._watchers) == before, timeout=2)
    assert len(status_hub._watchers) == before


async def test_handler_errors_reach_on_error_and_the_session_goes_on(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        errors: list[BaseException] = []
        s.on_error(errors.append)

        @s.on("pong")
        def broken(payload: Any) -> None:
            raise RuntimeError(f"boom {payload}")

        await s.send("ping", 1)
        assert await s.call("echo", "still alive") == "still alive"
        await eventually(lambda: errors)
        assert [str(e) for e in errors] == ["boom 1"]


async def test_async_handlers_run_one_at_a_time_in_order(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        order: list[int] = []
        running = 0

        async def slow(item: dict[str, Any]) -> None:
            nonlocal running
            running += 1
            assert running == 1
            await asyncio.sleep(0.001)  # the scenario: a handler that takes a while
            order.append(item["i"])
            running -= 1

        remove = s.on("item", slow)
        s.on("item", lambda item: order.append(-item["i"]))
        await s.call("emit_many", {"event": "item", "count": 20, "payload": None})
        await eventually(lambda: len(order) == 40, timeout=2)
        expected = [x for i in range(20) for x in (i, -i)]
        assert order == expected
        remove()
        assert not s.off("item", slow)


async def test_reconnects_after_a_server_side_disconnect(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect(), reconnect_delay=(0.05, 0.2)) as s:
        dropped = asyncio.Event()
        back = asyncio.Event()
        s.on_disconnect(lambda error: dropped.set())
        s.on_reconnect(back.set)
        await s.send("disconnect_me")
        await asyncio.wait_for(dropped.wait(), 5)
        await s.send("record", "queued while down")
        # Issue 12: as socket.io-client, a server's disconnect is not retried by itself
        # ("io server disconnect"); the program's connect() reconnects.
        assert s.state is jrt.SessionState.KICKED
        await s.connect()
        await asyncio.wait_for(back.wait(), 5)
        assert await s.call("records") == ["queued while down"]


async def test_token_expiry_renews_through_connect_callable(api: jrt.Jamsocket) -> None:
    real = await api.connect(key="renew")
    stale = jrt.ConnectResponse.from_dict(
        {**real.to_dict(), "token": "bogus", "url": real.url.replace(real.token, "bogus")}
    )
    with pytest.raises(jrt.TokenExpired):
        async with jrt.Session(stale):
            pass
    calls = 0

    async def connect() -> jrt.ConnectResponse:
        nonlocal calls
        calls += 1
        return await api.connect(key="renew")

    async with jrt.Session(stale, connect=connect) as s:
        assert calls == 1
        assert await s.call("echo", "renewed") == "renewed"


async def test_ready_timeout_and_startup_failure() -> None:
    dev = DevServer(backend="sleep 30", quiet=True, startup_timeout=1.0)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        with pytest.raises(jrt.ReadyTimeout, match=r"not ready after 0\.3 s"):
            async with jrt.Session(await api.connect(), ready_timeout=0.3):
                pass
        with pytest.raises(jrt.BackendTerminated) as info:
            async with jrt.Session(await api.connect(), ready_timeout=10):
                pass
        assert info.value.reason == jrt.TerminationReason.STARTUP_TIMEOUT


async def test_close_leaves_no_task_and_installs_no_signal_handler(api: jrt.Jamsocket) -> None:
    handler = signal.getsignal(signal.SIGINT)
    response = await api.connect()
    before = asyncio.all_tasks()
    async with jrt.Session(response) as s:
        await s.call("echo", 1)
        assert signal.getsignal(signal.SIGINT) is handler
        assert client_tasks(asyncio.all_tasks() - before), "the session should have tasks"
    await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=2)
    assert client_tasks(asyncio.all_tasks() - before) == []
    assert signal.getsignal(signal.SIGINT) is handler
    with pytest.raises(jrt.SessionClosed):
        await s.send("ping")


@pytest.mark.slow
async def test_polling_transport(api: jrt.Jamsocket) -> None:
    handler = signal.getsignal(signal.SIGINT)
    async with jrt.Session(await api.connect(), transports=["polling"]) as s:
        assert await s.call("echo", {"via": "polling"}) == {"via": "polling"}
        pong = asyncio.ensure_future(s.wait_for("pong", timeout=5))
        await s.send("ping", 2)
        assert await pong == 2
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.node
@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_a_broadcast_from_a_node_client_reaches_a_python_session(
    api: jrt.Jamsocket, require_node: str
) -> None:
    response = await api.connect(key="mixed")
    async with jrt.Session(response) as s:
        got = asyncio.ensure_future(s.wait_for("broadcast", timeout=10))
        other = await api.connect(key="mixed")
        origin = other.url.split("/", 3)
        node = await NodeClient.start(
            f"{origin[0]}//{origin[2]}", f"/{origin[3].strip('/')}/socket.io/", node=require_node
        )
        try:
            await node.emit("broadcast", "from node")
            assert await got == "from node"
        finally:
            await node.close()


def test_bad_options_fail_at_construction() -> None:
    response = {
        "backend_id": "b",
        "spawned": True,
        "status": "ready",
        "token": "t",
        "url": "http://127.0.0.1:1/t/",
        "status_url": "http://127.0.0.1:1/v2/backend/b/status",
    }
    with pytest.raises(TypeError):
        jrt.Session(response, no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="transports"):
        jrt.Session(response, transports=["carrier-pigeon"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="ready_timeout"):
        jrt.Session(response, ready_timeout=-1)
    with pytest.raises(ValueError, match="max_queue"):
        jrt.Session(response, max_queue=0)
    with pytest.raises(jrt.InvalidResponse, match="url"):
        jrt.Session({**response, "url": "ftp://x/t/"})
    with pytest.raises(TypeError, match="ConnectResponse"):
        jrt.Session()


@pytest.mark.slow
def test_the_readme_demo_runs_end_to_end() -> None:
    """`./run demo` is the README's first command: keep it working."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "jamsocket_rt", "demo", "--calls", "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in ("alice", "bob", "carol"):
        assert f"{name:<8} status ready" in out
    assert "alice    status scheduled" in out
    assert "bob      broadcasts received: ['hello room, from alice']" in out
    assert "carol    broadcasts received: []" in out
    assert "terminated 2 backends" in out
    assert out.rstrip().endswith("done")


async def test_catch_all_handler_sees_every_event(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        seen: list[tuple[Any, ...]] = []
        s.on("*", lambda event, *args: seen.append((event, *args)))
        pong = s.wait_for("pong", timeout=5)
        await s.send("ping", 1, "two")
        await pong
        assert ("pong", 1, "two") in seen


async def test_plain_functions_returning_coroutines_are_awaited_in_order(
    api: jrt.Jamsocket,
) -> None:
    async with jrt.Session(await api.connect()) as s:
        order: list[Any] = []

        async def record(item: dict[str, Any]) -> None:
            await asyncio.sleep(0)  # the scenario: a coroutine that yields to the loop
            order.append(item["i"])

        s.on("item", lambda item: record(item))  # a lambda: not a coroutine function itself
        s.on("item", lambda item: order.append(-item["i"]))
        await s.call("emit_many", {"event": "item", "count": 5, "payload": None})
        await eventually(lambda: len(order) == 10, timeout=2)
        assert order == [x for i in range(5) for x in (i, -i)]
