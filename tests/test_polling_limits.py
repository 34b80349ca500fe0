"""The polling transport reads large polls without weakening python-engineio's servers."""

from __future__ import annotations

import asyncio
from typing import Any

import engineio

from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.python_socketio import PythonSocketIOTransport
from tests.helpers.transport_peers import TOKEN_PATH, Recorder, python_peer


async def test_a_poll_of_a_hundred_packets_and_the_servers_limit_untouched() -> None:
    server_limit = engineio.payload.Payload.max_decode_packets
    with python_peer() as origin:
        transport = PythonSocketIOTransport()
        target = ConnectTarget(
            origin, socketio_path=TOKEN_PATH, transports=("polling",), connect_timeout=5
        )
        await transport.connect(target, Recorder())
        try:
            loop = asyncio.get_running_loop()
            answers: list[asyncio.Future[list[Any]]] = []
            for i in range(100):  # the server answers them in one poll: > 16 packets
                answer: asyncio.Future[list[Any]] = loop.create_future()
                transport.emit("echo", [i], answer.set_result)
                answers.append(answer)
            results = await asyncio.wait_for(asyncio.gather(*answers), 15)
            assert results == [[i] for i in range(100)]
        finally:
            await transport.close()
    # python-engineio's servers in this process keep their own limit (whatever a server of
    # the process chose: a test's example backend may have raised it for itself).
    assert engineio.payload.Payload.max_decode_packets == server_limit
