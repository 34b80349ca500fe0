"""SyncSession: the blocking API in a plain thread, a worker thread and inside a running loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import BackgroundDevServer
from jamsocket_rt.sync.session import _LoopThread


@pytest.fixture
def dev(jamsocket_dev_server: BackgroundDevServer) -> BackgroundDevServer:
    """The project's own pytest plugin serves these tests (bundled example backend)."""
    return jamsocket_dev_server


Handler = Callable[[Any], None]


def closable(stream: Iterator[Any]) -> Generator[Any, None, None]:
    """A SyncSession stream, which is a generator (closed with close()), as its type."""
    return cast(Generator[Any, None, None], stream)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jamsocket_rt loop"]


def test_blocking_session_in_a_plain_script(dev: BackgroundDevServer) -> None:
    welcomes: list[Any] = []
    session = jrt.SyncSession(dev.connect())
    session.on("welcome", welcomes.append)
    with session as s:
        assert s.ready
        assert s.connected
        assert s.call("echo", "hi", timeout=5) == "hi"
        pongs = closable(s.stream("pong"))  # listening before sending: a pong can beat a wait
        s.send("ping", 7)
        assert next(pongs) == 7
        pongs.close()
        events = closable(s.stream("tick"))
        assert s.call("emit_many", {"event": "tick", "count": 5, "payload": 0}) == 5
        assert [next(events)["i"] for _ in range(5)] == list(range(5))
        events.close()
        assert welcomes
        assert "SyncSession" in repr(s)
    assert loop_threads() == [], "closing the last SyncSession stops its loop thread"


def test_handlers_run_on_the_loop_thread_and_cannot_block_on_it(dev: BackgroundDevServer) -> None:
    seen: list[str] = []
    errors: list[BaseException] = []
    with jrt.SyncSession(dev.connect()) as s:
        s.on_error(errors.append)
        on_pong: Callable[[Handler], Handler] = s.on("pong")  # (SyncSession.on gives Any)

        @on_pong
        def handler(payload: Any) -> None:
            seen.append(threading.current_thread().name)
            s.call("echo", 1)  # blocking on the loop thread would deadlock: it must raise

        s.send("ping", 1)
        s.call("echo", "sync point")
        assert seen == ["jamsocket_rt loop"]
        assert len(errors) == 1
        assert isinstance(errors[0], RuntimeError)
        assert "would wait for itself" in str(errors[0])


def test_several_sessions_from_worker_threads_share_one_loop(dev: BackgroundDevServer) -> None:
    results: dict[int, Any] = {}

    def worker(n: int) -> None:
        with jrt.SyncSession(dev.connect(key="shared")) as s:
            results[n] = s.call("echo", n)
            assert len(loop_threads()) == 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: n for n in range(4)}
    assert loop_threads() == []
    assert _LoopThread._users == 0


async def test_works_inside_a_running_event_loop(dev: BackgroundDevServer) -> None:
    # As in a Jupyter cell: blocking calls made from code that runs on an event loop.
    response = dev.connect()
    with jrt.SyncSession(response) as s:
        assert s.call("echo", {"inside": "loop"}) == {"inside": "loop"}
    assert asyncio.get_running_loop().is_running()


def test_errors_surface_in_the_calling_thread(dev: BackgroundDevServer) -> None:
    with jrt.SyncSession(dev.connect()) as s:
        with pytest.raises(TimeoutError):
            s.call("sleep", 5, timeout=0.2)
        with pytest.raises(TypeError):
            s.send("record", object())
        with pytest.raises(TimeoutError):
            s.wait_for("never", timeout=0.1)
    with pytest.raises(RuntimeError, match="not connected"):
        jrt.SyncSession(dev.connect()).send("ping")


async def test_a_dev_server_on_the_blocked_loop_is_named_at_once() -> None:
    # A notebook's mistake: an async DevServer on the kernel's loop, then a SyncSession in a
    # cell, which blocks that loop while it waits for the server it holds.
    from jamsocket_rt.dev import DevServer

    async with DevServer(quiet=True) as dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        response = await api.connect()
        session = jrt.SyncSession(response, ready_timeout=60)
        started = asyncio.get_running_loop().time()
        with pytest.raises(jrt.ConfigurationError, match="BackgroundDevServer"):
            session.connect()
        assert asyncio.get_running_loop().time() - started < 30, "said at once, not at timeout"
        assert loop_threads() == []
        await api.terminate(response.backend_id)
