"""The handshake: ``query=`` on every Engine.IO request, ``auth=`` as a function per CONNECT.

Against the real Node socket.io server (tests/node/handshake_backend.js: ``socket.handshake``)
and python-socketio's (tests/backends/handshake.py: the connect handler's ``environ`` and
``auth``), both behind the dev server's token proxy; connections are cut with the FaultProxy.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from jamsocket_rt.protocol.options import TransportName
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.tasks import client_tasks

HERE = Path(__file__).resolve().parent
FLAVOURS = (pytest.param("node", marks=pytest.mark.node), "python")
TRANSPORTS = ("websocket", "polling")

#: Characters that need encoding in a query string, and some that need UTF-8.
QUERY = {"room": "a b&c=d", "name": "zoë+ñ/?#", "empty": ""}


def handshake_backend(flavour: str) -> list[str]:
    if flavour == "node":
        return [shutil.which("node") or "node", str(HERE / "node" / "handshake_backend.js")]
    return [sys.executable, str(HERE / "backends" / "handshake.py")]


@pytest.fixture(scope="module", params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    if value == "node":
        request.getfixturevalue("require_node")
    return value


@pytest.fixture
async def dev(flavour: str) -> AsyncIterator[DevServer]:
    async with DevServer(backend=handshake_backend(flavour), quiet=True) as server:
        yield server


@pytest.fixture
async def response(dev: DevServer) -> jrt.ConnectResponse:
    async with jrt.Jamsocket.dev_server(dev.api_url) as api:
        return await api.connect()


def counting_auth(asynchronous: bool) -> tuple[Callable[[], Any], list[int]]:
    """An auth function handing out {"n": 1}, {"n": 2}... and the list of what it handed out."""
    counter = itertools.count(1)
    handed: list[int] = []

    def make() -> Mapping[str, Any]:
        handed.append(next(counter))
        return {"n": handed[-1]}

    async def make_async() -> Mapping[str, Any]:
        await asyncio.sleep(0)  # a real await: the CONNECT waits for it
        return make()

    return (make_async if asynchronous else make), handed


class Reconnects:
    """Counts on_reconnect of a Session or Namespace."""

    def __init__(self, target: jrt.Namespace) -> None:
        self.count = 0
        target.on_reconnect(self._reconnected)

    def _reconnected(self) -> None:
        self.count += 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_query_reaches_the_server_on_either_transport(
    response: jrt.ConnectResponse, transport: TransportName
) -> None:
    async with jrt.Session(response, query=QUERY, transports=(transport,)) as session:
        seen: dict[str, Any] = await session.call("handshake")
    query = seen["query"]
    assert {key: query.get(key) for key in QUERY} == QUERY
    # Engine.IO's own parameters are still there (the user's come after them).
    assert query["EIO"] == "4"


async def test_no_query_sends_only_engine_ios_own(response: jrt.ConnectResponse) -> None:
    async with jrt.Session(response) as session:
        seen: dict[str, Any] = await session.call("handshake")
    assert set(seen["query"]) <= {"EIO", "transport", "t", "sid", "j", "b64"}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_auth_function_is_called_again_for_a_reconnect_and_an_extra_namespace(
    dev: DevServer, response: jrt.ConnectResponse, asynchronous: bool
) -> None:
    root_auth, root_handed = counting_auth(asynchronous)
    extra_auth, extra_handed = counting_auth(asynchronous)
    async with (
        FaultProxy(port_of(dev.proxy_url)) as fault,
        jrt.Session(
            through(response, url=fault),
            auth=root_auth,
            query={"q": "kept"},
            reconnect_delay=(0.05, 0.5),
        ) as session,
    ):
        extra = session.namespace("/x", auth=extra_auth)
        await extra.wait_connected(timeout=10)
        first: dict[str, Any] = await session.call("handshake")
        first_extra: dict[str, Any] = await extra.call("handshake")
        assert first["auth"] == {"n": 1}
        assert first_extra["auth"] == {"n": 1}
        assert first_extra["nsp"] == "/x"

        root_again, extra_again = Reconnects(session), Reconnects(extra)
        fault.reset_all()
        await eventually(lambda: root_again.count and extra_again.count, timeout=15)
        second: dict[str, Any] = await session.call("handshake")
        second_extra: dict[str, Any] = await extra.call("handshake")
    # Each CONNECT got a fresh value, and the server saw it.
    assert second["auth"] == {"n": root_handed[-1]}
    assert root_handed[-1] >= 2
    assert second_extra["auth"] == {"n": extra_handed[-1]}
    assert extra_handed[-1] >= 2
    assert second["query"]["q"] == "kept"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "query",
    [{"a": 1}, {1: "a"}, ["a", "b"], "a=b", {"a": None}],
    ids=["int value", "int key", "list", "str", "None value"],
)
async def test_a_query_that_is_not_a_mapping_of_strings_is_a_type_error(query: Any) -> None:
    before = asyncio.all_tasks()
    with pytest.raises(TypeError, match="query"):
        jrt.Session(query=query)
    with pytest.raises(TypeError, match="query"):
        jrt.SessionOptions(query=query)
    assert asyncio.all_tasks() == before


def _raises() -> Mapping[str, Any]:
    raise RuntimeError("no credentials today")


async def _returns_a_string() -> Any:
    return "secret"


@pytest.mark.parametrize(
    ("auth", "cause"),
    [(_raises, "RuntimeError: no credentials today"), (_returns_a_string, "returned str")],
    ids=["raises", "not a mapping"],
)
async def test_a_failing_auth_function_fails_connect_with_auth_failed(
    response: jrt.ConnectResponse, auth: Callable[[], Any], cause: str
) -> None:
    before = asyncio.all_tasks()
    session = jrt.Session(response, auth=auth)
    with pytest.raises(jrt.AuthFailed, match="auth") as failed:
        await session.connect()
    assert cause in str(failed.value)
    await session.close()
    await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=5)


async def test_an_auth_function_failing_on_a_reconnect_fails_every_waiter(
    dev: DevServer, response: jrt.ConnectResponse
) -> None:
    before = asyncio.all_tasks()
    calls = 0

    def auth() -> Mapping[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise PermissionError("revoked")
        return {"n": calls}

    async with FaultProxy(port_of(dev.proxy_url)) as fault:
        session = jrt.Session(through(response, url=fault), auth=auth, reconnect_delay=(0.05, 0.5))
        reported: list[BaseException] = []
        session.on_error(reported.append)
        await session.connect()
        assert (await session.call("handshake"))["auth"] == {"n": 1}
        fault.reset_all()
        await eventually(lambda: not session.connected, timeout=10)
        waiting = [
            asyncio.ensure_future(session.call("echo", 1, retry=True)),
            asyncio.ensure_future(session.wait_for("never")),
        ]
        for waiter in waiting:
            with pytest.raises(jrt.AuthFailed, match="auth"):
                await asyncio.wait_for(waiter, 15)
        with pytest.raises(jrt.AuthFailed):
            await session.send("echo")
        # Nobody called connect(): on_error is how a program hears it, once.
        await eventually(lambda: reported)
        assert [type(error) for error in reported] == [jrt.AuthFailed]
        await session.close()
    await eventually(lambda: not client_tasks(asyncio.all_tasks() - before), timeout=5)
