"""The example session backends: the Python and the Node one must speak the same protocol.

Every test runs against both flavours (``example_backend`` is one process per flavour for the
module); tests that end their backend spawn their own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.helpers.backends import BackendProcess, backend_command
from tests.helpers.peers import NodeClient, SioClient

SioFactory = Callable[..., Awaitable[SioClient]]
NodeFactory = Callable[..., Awaitable[NodeClient]]

KIB16 = 16 * 1024


async def test_welcome_is_the_first_event(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    headers = {"x-verified-username": "ada", "x-verified-user-data": '{"role": "admin", "n": 1}'}
    client = await sio_client(example_backend.url, headers=headers)
    await client.wait_event("welcome")
    assert client.events[0] == (
        "welcome",
        [
            {
                "backend_id": example_backend.backend_id,
                "sid": client.sid,
                "user": "ada",
                "user_data": {"role": "admin", "n": 1},
            }
        ],
    )


@pytest.mark.parametrize(
    "headers", [{}, {"x-verified-user-data": "not json"}], ids=["absent", "invalid"]
)
async def test_welcome_user_is_null_without_valid_headers(
    example_backend: BackendProcess, sio_client: SioFactory, headers: dict[str, str]
) -> None:
    client = await sio_client(example_backend.url, headers=headers)
    [welcome] = await client.wait_event("welcome")
    assert welcome["user"] is None
    assert welcome["user_data"] is None


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("one",),
        (None,),
        ([1, 2],),
        (1, "two", {"three": [3]}, None, True, 2.5),
        ("x" * KIB16,),
        (os.urandom(KIB16), {"nested": b"\x00\x01"}),
    ],
    ids=["none", "one", "null", "list", "several", "16KiB-text", "16KiB-bytes"],
)
async def test_echo_acks_exactly_its_arguments(
    example_backend: BackendProcess, sio_client: SioFactory, args: tuple[Any, ...]
) -> None:
    client = await sio_client(example_backend.url)
    assert await client.call("echo", *args) == list(args)


@pytest.mark.parametrize("args", [(), (1, "x", {"y": None})], ids=["none", "several"])
async def test_ping_answers_pong_with_the_same_arguments(
    example_backend: BackendProcess, sio_client: SioFactory, args: tuple[Any, ...]
) -> None:
    client = await sio_client(example_backend.url)
    await client.emit("ping", *args)
    assert await client.wait_event("pong") == list(args)


async def test_broadcast_reaches_every_socket_sender_included(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    a = await sio_client(example_backend.url)
    b = await sio_client(example_backend.url)
    await a.emit("broadcast", "hello", {"n": 1})
    assert await a.wait_event("broadcast") == ["hello", {"n": 1}]
    assert await b.wait_event("broadcast") == ["hello", {"n": 1}]
    assert not a.received("pong")


async def test_records_keep_the_first_argument_in_order(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    client = await sio_client(example_backend.url)
    assert await client.call("reset_records") == [True]
    for seq in range(100):
        await client.emit("record", seq, "ignored")
    await client.emit("record")
    assert await client.call("records") == [[*range(100), None]]
    assert await client.call("reset_records") == [True]
    assert await client.call("records") == [[]]


async def test_whoami_reports_verified_headers_and_auth(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    headers = {"x-verified-username": "ada", "x-verified-secret": "s3", "x-other": "no"}
    client = await sio_client(example_backend.url, headers=headers, auth={"token": "t", "n": 2})
    [me] = await client.call("whoami")
    assert me == {
        "sid": client.sid,
        "backend_id": example_backend.backend_id,
        "headers": {"x-verified-username": "ada", "x-verified-secret": "s3"},
        "auth": {"token": "t", "n": 2},
    }

    bare = await sio_client(example_backend.url)
    [me] = await bare.call("whoami")
    assert me["headers"] == {}
    assert me["auth"] is None


async def test_sleep_acks_late_without_blocking_other_events(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    client = await sio_client(example_backend.url)
    started = time.monotonic()
    sleeping = asyncio.ensure_future(client.call("sleep", 0.3))
    assert await client.call("echo", "meanwhile") == ["meanwhile"]
    assert not sleeping.done()
    assert await sleeping == [True]
    assert time.monotonic() - started >= 0.29


async def test_emit_many_streams_in_order_then_acks_the_count(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    client = await sio_client(example_backend.url)
    payload = {"blob": "y" * 100}
    spec = {"event": "item", "count": 500, "payload": payload}
    assert await client.call("emit_many", spec) == [500]
    # The ack travels behind the events on the same connection.
    assert client.received("item") == [[{"i": i, "payload": payload}] for i in range(500)]


async def test_disconnect_me_is_a_server_side_disconnect(
    example_backend: BackendProcess, sio_client: SioFactory
) -> None:
    bystander = await sio_client(example_backend.url)
    client = await sio_client(example_backend.url)
    await client.emit("disconnect_me")
    assert await client.wait_disconnect() == client.sio.reason.SERVER_DISCONNECT
    await asyncio.sleep(0.2)  # an absence: no reconnection meanwhile
    assert not client.sio.connected  # clients don't retry a server-side disconnect
    assert await bystander.call("echo", 1) == [1]


async def test_exit_ends_the_process_with_that_code(
    backend_flavour: str, spawn_backend: Callable[..., BackendProcess], sio_client: SioFactory
) -> None:
    backend = spawn_backend(backend_flavour)
    client = await sio_client(backend.url, client_kwargs={"reconnection": False})
    await client.emit("exit", 3)
    assert await asyncio.to_thread(backend.wait) == 3
    await client.wait_disconnect()


@pytest.mark.slow
async def test_sigterm_closes_connections_and_exits_0(
    backend_flavour: str, spawn_backend: Callable[..., BackendProcess], sio_client: SioFactory
) -> None:
    backend = spawn_backend(backend_flavour)
    client = await sio_client(backend.url, client_kwargs={"reconnection": False})
    polling = await sio_client(
        backend.url, transports=["polling"], client_kwargs={"reconnection": False}
    )
    backend.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(backend.wait) == 0
    await client.wait_disconnect()
    await polling.wait_disconnect()
    assert backend.log().strip().splitlines() == [f"listening on {backend.port}"]


async def test_polling_transport(example_backend: BackendProcess, sio_client: SioFactory) -> None:
    client = await sio_client(example_backend.url, transports=["polling"])
    await client.wait_event("welcome")
    assert client.sio.transport() == "polling"
    blob = os.urandom(KIB16)
    assert await client.call("echo", "x" * KIB16, blob) == ["x" * KIB16, blob]
    await client.emit("ping", 7)
    assert await client.wait_event("pong") == [7]
    assert await client.call("emit_many", {"event": "tick", "count": 50, "payload": None}) == [50]
    assert client.received("tick")[-1] == [{"i": 49, "payload": None}]
    # python-engineio servers leave the pending poll hanging on close unless told otherwise.
    started = time.monotonic()
    await client.disconnect()
    assert time.monotonic() - started < 2


async def test_plain_http_get_root_answers_ok(example_backend: BackendProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(example_backend.url + "/") as response:
        assert response.status == 200
        assert await response.text() == "ok"


def test_port_is_required(backend_flavour: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    result = subprocess.run(
        backend_command(backend_flavour), env=env, capture_output=True, timeout=15, check=False
    )
    assert result.returncode != 0
    assert b"PORT" in result.stderr


# --------------------------------------------------------------------------- the Node peer


@pytest.mark.node
async def test_node_client_echo_and_broadcast_with_a_python_client(
    example_backend: BackendProcess, sio_client: SioFactory, node_client: NodeFactory
) -> None:
    python = await sio_client(example_backend.url)
    node = await node_client(example_backend.url)
    welcome = await node.wait_event("welcome")
    assert welcome == [
        {"backend_id": example_backend.backend_id, "sid": node.sid, "user": None, "user_data": None}
    ]
    assert node.messages[0]["type"] == "connect"
    assert node.messages[1]["type"] == "event"

    blob = os.urandom(1024)
    assert await node.call("echo", 1, "two", {"blob": blob}) == [1, "two", {"blob": blob}]

    await node.emit("broadcast", "from node")
    assert await python.wait_event("broadcast") == ["from node"]
    assert await node.wait_event("broadcast") == ["from node"]
    await python.emit("broadcast", "from python")
    assert await node.wait_event("broadcast", count=2) == ["from python"]


@pytest.mark.node
async def test_node_client_over_polling_with_auth_and_headers(
    example_backend: BackendProcess, node_client: NodeFactory
) -> None:
    node = await node_client(
        example_backend.url,
        "/socket.io/",
        ["polling"],
        {"auth": {"k": "v"}, "extraHeaders": {"x-verified-username": "bob"}},
    )
    [me] = await node.call("whoami")
    assert me["auth"] == {"k": "v"}
    assert me["headers"] == {"x-verified-username": "bob"}
    with pytest.raises(TimeoutError):
        await node.call("sleep", 1, timeout=0.1)
    assert await node.close() == 0


@pytest.mark.node
async def test_node_client_batched_polling_emits_all_arrive_in_order(
    example_backend: BackendProcess, node_client: NodeFactory
) -> None:
    # Over polling, socket.io-client batches queued emits into one request (python-engineio
    # refuses more than 16 packets a request by default).
    node = await node_client(example_backend.url, "/socket.io/", ["polling"])
    assert await node.call("reset_records") == [True]
    for seq in range(300):
        await node.emit("record", seq)
    assert await node.call("records") == [list(range(300))]
