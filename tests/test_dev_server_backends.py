"""The dev server's lifecycle with each real example backend (Python and Node), via the client.

tests/test_dev_server.py covers every rule with small stand-in processes; this file checks that
the rules hold with the real Socket.IO backends, driven through the platform API client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import backend_command


@pytest.fixture
async def api(backend_flavour: str) -> AsyncIterator[jrt.Jamsocket]:
    dev = DevServer(backend=backend_command(backend_flavour), quiet=True, terminate_grace=3)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as client:
        yield client


async def walk(api: jrt.Jamsocket, backend_id: str) -> list[str]:
    statuses = []
    async with api.status_stream(backend_id) as stream:
        async for state in stream:
            statuses.append(str(state.status))
    return statuses


async def test_status_walk_key_reuse_and_terminate(api: jrt.Jamsocket) -> None:
    first = await api.connect(key="k")
    second = await api.connect(key="k")
    assert first.spawned
    assert not second.spawned
    assert second.backend_id == first.backend_id
    assert second.token != first.token
    async with jrt.Session(second):
        pass
    await api.terminate(first.backend_id)
    statuses = await asyncio.wait_for(walk(api, first.backend_id), 10)
    assert statuses == [
        "scheduled",
        "loading",
        "starting",
        "waiting",
        "ready",
        "terminating",
        "terminated",
    ]
    final = await api.status(first.backend_id)
    assert final.termination_reason is jrt.TerminationReason.EXTERNAL
    assert final.termination_kind is jrt.TerminationKind.SOFT
    third = await api.connect(key="k")
    assert third.spawned
    assert third.backend_id != first.backend_id


async def test_crash_gives_exit_error_and_the_proxy_answers_410(api: jrt.Jamsocket) -> None:
    response = await api.connect()
    async with jrt.Session(response) as s:
        await s.send("exit", 1)
        await asyncio.wait_for(walk(api, response.backend_id), 10)
    state = await api.status(response.backend_id)
    assert state.is_terminated
    assert state.exit_error is True
    async with aiohttp.ClientSession() as http, http.get(response.url) as answer:
        assert answer.status == 410
    with pytest.raises(jrt.BackendTerminated):
        async with jrt.Session(response):
            pass


async def test_idle_backend_is_swept(api: jrt.Jamsocket) -> None:
    response = await api.connect(spawn=jrt.SpawnOptions(max_idle_seconds=1))
    async with jrt.Session(response) as s:
        assert await s.call("echo", "busy") == "busy"
    statuses = await asyncio.wait_for(walk(api, response.backend_id), 15)
    assert statuses[-1] == "terminated"
    state = await api.status(response.backend_id)
    assert state.termination_reason is jrt.TerminationReason.SWEPT
