"""Micro-benchmark of the transports' write paths against the real Node socket.io server.

    .venv/bin/python benchmarks/micro_transport.py [--acks 20000] [--rtts 2000] [--conns 1000]

Starts tests/node/backend.js and measures, for each client:

- pipelined acks/s: 64 callers each emitting ``echo`` (64-byte payload) and awaiting its ack;
- sequential round-trip time: one ``echo`` at a time, p50 and p99;

then the resident memory of many idle WebSocketTransport connections, with the shared
ClientSession (the default) and with one ClientSession per connection.

Clients: WebSocketTransport as shipped (the first frame of a loop iteration written at once, the
rest of that iteration's frames joined into one write at its end), three alternative write paths
of the same transport (every frame written at once; every frame deferred to the iteration's end;
a writer task awaiting aiohttp's public ``send_frame``), PythonSocketIOTransport, and
python-socketio's AsyncClient used directly.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from jamsocket_rt.protocol.socketio import Frame
from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.python_socketio import PythonSocketIOTransport
from jamsocket_rt.transport.websocket import WebSocketTransport, _frame

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "x" * 64
WINDOW = 64

Call = Callable[[], Awaitable[Any]]


# --------------------------------------------------------------------------- write-path variants


class DirectWrite(WebSocketTransport):
    """Each frame goes to transport.write() at once: one syscall per frame."""

    def _write(self, frames: list[Frame]) -> None:
        assert self._tx is not None
        if not self._tx.is_closing():
            self._tx.write(b"".join(_frame(op, payload) for op, payload in frames))


class AlwaysDeferred(WebSocketTransport):
    """Every frame waits for the end of the loop iteration, then all go in one write."""

    def _write(self, frames: list[Frame]) -> None:
        self._pending.extend(_frame(op, payload) for op, payload in frames)
        if self._flush_handle is None:
            assert self._loop is not None
            self._flush_handle = self._loop.call_soon(self._flush)


class WriterTask(WebSocketTransport):
    """A writer task awaits aiohttp's public send_frame() for each queued frame."""

    def _write(self, frames: list[Frame]) -> None:
        queue: collections.deque[Frame] = self.__dict__.setdefault("_queue", collections.deque())
        queue.extend(frames)
        wake: asyncio.Future[None] | None = self.__dict__.get("_wake")
        if wake is not None and not wake.done():
            wake.set_result(None)
        if "_task" not in self.__dict__:
            self.__dict__["_task"] = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        queue: collections.deque[Frame] = self.__dict__["_queue"]
        assert self._ws is not None
        while True:
            while queue:
                opcode, payload = queue.popleft()
                await self._ws.send_frame(payload, aiohttp.WSMsgType(opcode))
            self.__dict__["_wake"] = asyncio.get_running_loop().create_future()
            await self.__dict__["_wake"]

    async def close(self) -> None:
        task = self.__dict__.get("_task")
        if task is not None:
            task.cancel()
        await super().close()


# --------------------------------------------------------------------------- clients


class Listener:
    def transport_event(self, event: str, args: list[Any], ack: Any) -> None:
        pass

    def transport_lost(self, error: BaseException | None) -> None:
        pass


async def open_transport(cls: type[Any], origin: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    transport = cls()
    await transport.connect(ConnectTarget(origin, "/socket.io/"), Listener())
    loop = asyncio.get_running_loop()

    async def call() -> Any:
        answer: asyncio.Future[list[Any]] = loop.create_future()
        transport.emit("echo", [PAYLOAD], answer.set_result)
        return await answer

    return call, transport.close


async def open_async_client(origin: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    sio = socketio.AsyncClient(
        reconnection=False, logger=False, engineio_logger=False, handle_sigint=False
    )
    await sio.connect(origin, transports=["websocket"])

    async def call() -> Any:
        return await sio.call("echo", PAYLOAD, timeout=30)

    return call, sio.disconnect


CLIENTS: dict[str, Callable[[str], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
    "WebSocketTransport (shipped)": lambda o: open_transport(WebSocketTransport, o),
    "  variant: write each frame at once": lambda o: open_transport(DirectWrite, o),
    "  variant: always defer to loop end": lambda o: open_transport(AlwaysDeferred, o),
    "  variant: writer task + send_frame": lambda o: open_transport(WriterTask, o),
    "PythonSocketIOTransport (ws)": lambda o: open_transport(PythonSocketIOTransport, o),
    "socketio.AsyncClient (raw)": open_async_client,
}


# --------------------------------------------------------------------------- measurements


async def pipelined(call: Call, total: int) -> tuple[float, float]:
    """Returns (acks per second, this process's CPU µs per ack)."""
    remaining = total

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(WINDOW)))
    cpu = time.process_time() - cpu
    return total / (time.perf_counter() - started), cpu / total * 1e6


async def sequential(call: Call, count: int) -> tuple[float, float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1e6, times[int(len(times) * 0.99)] * 1e6


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        match = re.search(r"VmRSS:\s+(\d+) kB", status.read())
    assert match is not None
    return int(match.group(1))


async def memory_per_connection(origin: str, count: int, shared: bool) -> float:
    sessions: list[aiohttp.ClientSession] = []
    transports: list[WebSocketTransport] = []
    gc.collect()
    before = rss_kib()
    for start in range(0, count, 100):
        batch = []
        for _ in range(min(100, count - start)):
            session = None if shared else aiohttp.ClientSession()
            if session is not None:
                sessions.append(session)
            transport = WebSocketTransport(session=session)
            transports.append(transport)
            batch.append(transport.connect(ConnectTarget(origin, "/socket.io/"), Listener()))
        await asyncio.gather(*batch)
    await asyncio.sleep(0.5)  # let the welcome events arrive and buffers settle
    gc.collect()
    per_connection = (rss_kib() - before) / count
    await asyncio.gather(*(t.close() for t in transports))
    for session in sessions:
        await session.close()
    return per_connection


# --------------------------------------------------------------------------- main


def start_backend() -> tuple[subprocess.Popen[bytes], str]:
    node = shutil.which("node")
    if node is None:
        sys.exit("node is required (and tests/node/node_modules: ./run test installs it)")
    proc = subprocess.Popen(
        [node, str(ROOT / "tests" / "node" / "backend.js")],
        env={**os.environ, "PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.search(r"listening on (\d+)", line)
    if match is None:
        proc.kill()
        sys.exit(f"the Node backend did not start: {line!r}")
    return proc, f"http://127.0.0.1:{match.group(1)}"


async def run(args: argparse.Namespace, origin: str) -> None:
    print(f"echo round trips against Node socket.io, {len(PAYLOAD)}-byte payload;")
    print(f"median of {args.rounds} interleaved rounds ({args.acks} acks, {args.rtts} RTTs each)")
    # Node's JIT warms up on the first thousands of messages: don't charge that to anyone.
    call, close = await open_transport(WebSocketTransport, origin)
    await pipelined(call, 20000)
    await close()
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in CLIENTS}
    for _ in range(args.rounds):
        for name, opener in CLIENTS.items():
            call, close = await opener(origin)
            try:
                await pipelined(call, 1000)  # warm up this client
                rate, cpu = await pipelined(call, args.acks)
                p50, p99 = await sequential(call, args.rtts)
            finally:
                await close()
            results[name].append((rate, cpu, p50, p99))
    print(f"{'':38} {'pipelined, window 64':>25} {'sequential':>18}")
    print(f"{'client':38} {'acks/s':>9} {'client CPU/ack':>15} {'RTT p50':>9} {'p99':>8}")
    for name, runs in results.items():
        rate, cpu, p50, p99 = (statistics.median(c) for c in zip(*runs, strict=True))
        print(f"{name:38} {rate:9,.0f} {cpu:12.1f} µs {p50:6.0f} µs {p99:5.0f} µs")


def memory_table(origin: str, conns: int) -> None:
    print(f"\nresident memory per idle WebSocketTransport, {conns} connections")
    for shared in (True, False):
        # A fresh process each: freed memory is not given back, so a second run in the same
        # process would look cheaper than it is.
        out = subprocess.run(
            [sys.executable, __file__, "--memory-of", origin, "--conns", str(conns)]
            + ([] if shared else ["--private-sessions"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        label = "shared ClientSession" if shared else "ClientSession per connection"
        print(f"{label:38} {float(out):8.1f} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--acks", type=int, default=20000, help="acks per pipelined run")
    parser.add_argument("--rtts", type=int, default=2000, help="sequential round trips")
    parser.add_argument("--conns", type=int, default=1000, help="connections for memory (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per client")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one memory run
    parser.add_argument("--private-sessions", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:
        kib = asyncio.run(
            memory_per_connection(args.memory_of, args.conns, not args.private_sessions)
        )
        print(kib)
        return
    proc, origin = start_backend()
    try:
        asyncio.run(run(args, origin))
        if args.conns:
            memory_table(origin, args.conns)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
