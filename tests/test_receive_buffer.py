"""The websocket transport reads into one buffer per thread (issue 15, the stdlib loop).

asyncio's plain ``Protocol`` hands each read over as a new 256 KiB ``bytes`` (shrunk after the
read): on the stdlib loop that is an mmap, mremap and munmap per read, half the client's time
of a round trip. The transport is a ``BufferedProtocol`` whose buffer is shared by every
connection of a thread, so these tests check both that reads allocate no such buffers and
that connections sharing one never see each other's bytes. Against the real python-socketio
server, on the stdlib loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.websocket import WebSocketTransport
from tests.helpers.paths import REPO_ROOT
from tests.helpers.transport_peers import (
    TOKEN_PATH,
    Recorder,
    python_peer,
    self_signed_certificate,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with python_peer() as origin:
        yield origin


async def opened(origin: str) -> WebSocketTransport:
    transport = WebSocketTransport()
    await transport.connect(
        ConnectTarget(origin, socketio_path=TOKEN_PATH, connect_timeout=5.0), Recorder()
    )
    return transport


async def call(transport: WebSocketTransport, *args: Any) -> list[Any]:
    answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    transport.emit("echo", list(args), answer.set_result)
    return await asyncio.wait_for(answer, 10)


def run(loop_kind: str, coro: Any) -> Any:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(coro)
    return asyncio.run(coro)


PEAK_OF_50_CALLS = """
import asyncio, sys, tracemalloc
from tests.test_receive_buffer import call, opened

async def main() -> None:
    transport = await opened(sys.argv[1])
    try:
        await call(transport, "warm-up")
        tracemalloc.start()
        for i in range(50):
            assert await call(transport, i) == [i]
        print(tracemalloc.get_traced_memory()[1])
    finally:
        await transport.close()

asyncio.run(main())
"""


def test_a_read_allocates_no_large_buffer(origin: str) -> None:
    # In a process of its own: the server's thread here reads with 256 KiB buffers itself.
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_50_CALLS, origin],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.split()[-1])
    # Before: every read made a 256 KiB bytes object (the peak was above 256 KiB).
    assert peak < 128 * 1024, peak


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_connections_sharing_the_buffer_get_their_own_bytes(origin: str, loop_kind: str) -> None:
    # Large messages take many reads, and the connections of both threads read in turns.
    blobs = {n: bytes([n]) * (300 * 1024 + n) for n in range(4)}
    texts = {n: chr(ord("a") + n) * (200 * 1024 + n) for n in range(4)}
    failures: list[BaseException] = []

    async def thread_main(first: int) -> None:
        transports = [await opened(origin) for _ in range(2)]
        try:
            for _ in range(3):
                answers = await asyncio.gather(
                    *(call(t, blobs[first + k], texts[first + k]) for k, t in enumerate(transports))
                )
                for k, answer in enumerate(answers):
                    assert answer == [blobs[first + k], texts[first + k]]
        finally:
            for transport in transports:
                await transport.close()

    def in_thread(first: int) -> None:
        try:
            run(loop_kind, thread_main(first))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=in_thread, args=(first,)) for first in (0, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_tls_reads_through_the_shared_buffer_too(tmp_path: Path, loop_kind: str) -> None:
    # Under TLS the loop's SSL protocol decrypts into the buffer the connection hands it
    # (asyncio's sslproto and uvloop's alike): large messages still arrive whole.
    pem = self_signed_certificate(tmp_path)
    if pem is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pem)
    blob = bytes(range(256)) * 1200  # 300 KiB: more than the buffer, many reads

    async def main(origin: str) -> None:
        transport = WebSocketTransport()
        target = ConnectTarget(
            origin,
            socketio_path=TOKEN_PATH,
            connect_timeout=5.0,
            ssl=ssl.create_default_context(cafile=str(pem)),
        )
        await transport.connect(target, Recorder())
        try:
            for n in range(3):
                assert await call(transport, blob, n) == [blob, n]
        finally:
            await transport.close()

    with python_peer(ssl_context=server) as origin:
        assert origin.startswith("https://")
        run(loop_kind, main(origin))
