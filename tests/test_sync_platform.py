"""SyncJamsocket and SyncPlane: the platform clients, blocking, against real servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator

import pytest

import jamsocket_rt as jrt
from jamsocket_rt import BackendStatus, SyncJamsocket, SyncPlane
from jamsocket_rt.dev import BackgroundDevServer
from tests.helpers.plane_stub import PlaneStub


@pytest.fixture
def dev(jamsocket_dev_server: BackgroundDevServer) -> BackgroundDevServer:
    return jamsocket_dev_server


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "jamsocket_rt loop"]


def test_connect_stream_and_terminate_blocking(dev: BackgroundDevServer) -> None:
    with SyncJamsocket.dev_server(dev.api_url) as js:
        assert "SyncJamsocket" in repr(js)
        response = js.connect(key="sync-platform-1")
        states = js.status_stream(response)
        seen = []
        for state in states:
            seen.append(state.status)
            if state.status is BackendStatus.READY:
                break
        assert js.status(response.backend_id).status is BackendStatus.READY
        js.terminate(response.backend_id)
        seen.extend(state.status for state in states)  # the same stream, to its end
        assert seen[-1] is BackendStatus.TERMINATED
        assert BackendStatus.READY in seen
    assert js.closed
    assert loop_threads() == [], "closing the last blocking client stops the loop thread"
    with pytest.raises(RuntimeError, match="closed"):
        js.status(response.backend_id)
    js.close()  # idempotent


def test_usable_from_many_threads_at_once(dev: BackgroundDevServer) -> None:
    answers: list[jrt.ConnectResponse] = []
    errors: list[BaseException] = []
    with SyncJamsocket.dev_server(dev.api_url) as js:

        def connect(key: str) -> None:
            try:
                answers.append(js.connect(key=key))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=connect, args=(f"t{i % 2}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len({answer.backend_id for answer in answers}) == 2  # one backend per key
        for backend_id in {answer.backend_id for answer in answers}:
            js.terminate(backend_id)


def test_a_sync_session_takes_a_plain_connect_callable(dev: BackgroundDevServer) -> None:
    with (
        SyncJamsocket.dev_server(dev.api_url) as js,
        jrt.SyncSession(connect=lambda: js.connect(key="sync-platform-2")) as session,
    ):
        assert session.call("echo", "hi", timeout=5) == "hi"
        assert session.backend_id is not None
        js.terminate(session.backend_id)


def test_bad_options_are_refused_before_anything_starts() -> None:
    with pytest.raises(TypeError, match="session"):
        SyncJamsocket.dev(session=object())
    with pytest.raises(jrt.ConfigurationError, match="token"):
        SyncJamsocket(account="a", token="", service="s")
    assert loop_threads() == []


SCRIPT = """
import sys
from jamsocket_rt import SyncJamsocket
with SyncJamsocket.dev_server(sys.argv[1]) as js:
    response = js.connect(key="at-exit")
    js.terminate(response.backend_id)
forgotten = SyncJamsocket.dev_server(sys.argv[1])
forgotten.connect(key="at-exit-2")
forgotten.close()
print("done")
"""


def test_nothing_is_left_open_at_exit(dev: BackgroundDevServer) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", SCRIPT, dev.api_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
    assert "Unclosed" not in done.stderr
    assert "Task was destroyed" not in done.stderr


@pytest.fixture
async def plane() -> AsyncIterator[PlaneStub]:
    async with PlaneStub() as stub:
        yield stub


async def test_sync_plane(plane: PlaneStub) -> None:
    # The stub serves on this test's loop: the blocking calls go to a worker thread.
    client = await asyncio.to_thread(SyncPlane, plane.url, image="ghcr.io/acme/app:1")
    try:
        response = await asyncio.to_thread(client.connect, key="room-1")
        assert response.spawned
        await plane.run_to(response.backend_id, "ready")
        state = await asyncio.to_thread(client.status, response.backend_id)
        assert state.status is BackendStatus.READY
        await asyncio.to_thread(client.terminate, response.backend_id, True)
        stream = client.status_stream(response.backend_id)
        statuses = await asyncio.to_thread(lambda: [s.status for s in stream])
        assert statuses[-1] is BackendStatus.TERMINATED
    finally:
        await asyncio.to_thread(client.close)
    assert client.closed
