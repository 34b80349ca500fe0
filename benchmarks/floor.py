"""The floor of a sequential Socket.IO round trip on this machine, beside the real clients.

    .venv/bin/python -m benchmarks.floor [--reps 7] [--duration 1.0] [--payload 64]

One call at a time (the ``seq`` and ``pipe1`` rows of ``python -m benchmarks``) is bound by
latency, not by work: each round trip crosses the kernel twice and wakes two sleeping
processes. This measures, against the same Node socket.io server and in the same run:

- ``floor``: the least any client can do: a blocking socket, one precomputed masked frame sent
  again and again (the server acknowledges whatever id it is given), the answer found by its
  first two bytes, no event loop, no JSON, no parsing of the answer;
- ``jamsocket_rt`` (a Session on uvloop with orjson, as in the benchmarks) and ``node``
  (socket.io-client 4), through ``benchmarks/client.py`` and ``bench_client.js``.

It prints, per client, the median p50 round trip and calls/s with their ranges, the client's
CPU per call where it is known, and ratios to the Node client taken pair by pair. A ratio of
the floor to Node shows how far any client could get at all; what a client adds above the
floor is its own cost per round trip.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import struct
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from .runner import BenchError, Child, Servers, Settings, client_argv, rotated

CLIENTS = ("floor", "jamsocket_rt", "node")


# --------------------------------------------------------------------------- the floor client


class FloorClient:
    """A blocking websocket speaker that knows one message (see the module docstring)."""

    def __init__(self, url: str, path: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path}?EIO=4&transport=websocket HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"no websocket: {head[:60]!r}")
        if not self.message().startswith(b"0"):  # Engine.IO OPEN
            raise ConnectionError("no Engine.IO OPEN")
        self.sock.sendall(frame("40"))
        if not self.message().startswith(b"40"):  # Socket.IO CONNECT
            raise ConnectionError("no Socket.IO CONNECT")

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def message(self) -> bytes:
        """The payload of the next (unfragmented, unmasked) server frame."""
        while True:
            buffer = self.buffer
            if len(buffer) >= 2:
                size, start = buffer[1] & 0x7F, 2
                if size == 126:
                    size, start = struct.unpack_from(">H", buffer, 2)[0], 4
                elif size == 127:
                    size, start = struct.unpack_from(">Q", buffer, 2)[0], 10
                if len(buffer) >= start + size:
                    self.buffer = buffer[start + size :]
                    return buffer[start : start + size]
            self.buffer += self._recv()

    def sequential(self, payload: int, seconds: float) -> dict[str, Any]:
        request = frame('420["echo","' + "x" * payload + '"]')
        pong = frame("3")
        clock, send, message = time.perf_counter, self.sock.send, self.message
        times: list[float] = []
        cpu = time.process_time()
        start = clock()
        deadline = start + seconds
        while (before := clock()) < deadline:
            send(request)
            while True:
                answer = message()
                if answer[:2] == b"43":
                    break
                if answer == b"2":  # the server's ping
                    send(pong)
            times.append(clock() - before)
        elapsed = clock() - start
        times.sort()
        return {
            "rate": len(times) / elapsed,
            "p50_us": times[len(times) // 2] * 1e6,
            "cpu_us": (time.process_time() - cpu) / len(times) * 1e6,
        }


def frame(text: str) -> bytes:
    """A masked client text frame (the mask is random, as RFC 6455 asks)."""
    data = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
    size = len(data)
    if size < 126:
        header = bytes([0x81, 0x80 | size])
    elif size < 65536:
        header = bytes([0x81, 0x80 | 126]) + struct.pack(">H", size)
    else:
        header = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", size)
    return header + mask + masked


def serve_floor(spec: dict[str, Any]) -> None:
    """The child-process side: the line protocol of benchmarks/client.py's roundtrip mode."""
    try:
        client = FloorClient(spec["url"], spec["path"])
    except OSError as exc:
        print(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            scenario = json.loads(line)
            try:
                if scenario.get("warmup"):
                    client.sequential(scenario["payload"], scenario["warmup"])
                result = client.sequential(scenario["payload"], scenario["duration"])
            except OSError as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps({"id": scenario["id"], **result}), flush=True)


# --------------------------------------------------------------------------- the run


def _range(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    median = fmt.format(statistics.median(values))
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--serve-floor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(json.loads(args.serve_floor))
        return

    settings = Settings()
    servers = Servers(settings)
    children: dict[str, Child] = {}
    results: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
    try:
        spec = {"mode": "roundtrip", **servers.target("node").spec(), "warmup_first": 0.5}
        for client in CLIENTS:
            argv = (
                [sys.executable, "-m", "benchmarks.floor", "--serve-floor", json.dumps(spec)]
                if client == "floor"
                else client_argv(client, settings, spec)
            )
            children[client] = Child(client, argv)
        live = []
        for client in CLIENTS:
            try:
                ready = children[client].read_json(60)
            except (BenchError, OSError) as exc:
                ready = {"error": str(exc)}
            if ready.get("ready"):
                live.append(client)
            else:
                print(f"{client} could not start: {ready.get('error')}", file=sys.stderr)
        scenario = {
            "id": f"seq-{args.payload}",
            "kind": "seq",
            "payload": args.payload,
            "window": 1,
            "duration": args.duration,
            "warmup": 0.1,
        }
        for rep in range(args.reps):
            for client in rotated(live, rep):
                try:
                    children[client].send(scenario)
                    result = children[client].read_json(60 + 20 * args.duration)
                except (BenchError, OSError) as exc:
                    result = {"error": str(exc)}
                results[client].append(result)
            print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    finally:
        for child in children.values():
            child.stop()
        servers.close()

    print(
        f"\nOne call at a time, {args.payload} B, Node socket.io server, {args.reps} x "
        f"{args.duration:g} s; medians (min-max); ratios to the Node client, pair by pair\n"
    )
    print(
        "| client | p50 round trip (us) | calls/s | client CPU per call (us) | "
        "calls/s ÷ Node client |"
    )
    print("|---|---|---|---|---|")
    node = results["node"]
    for client in CLIENTS:
        rows = results[client]
        rates = [r["rate"] for r in rows if "rate" in r]
        ratios = [
            mine["rate"] / theirs["rate"]
            for mine, theirs in zip(rows, node, strict=False)
            if "rate" in mine and theirs.get("rate")
        ]
        failed = [r["error"] for r in rows if "error" in r]
        if failed or not rows:
            print(f"{client}: {len(failed)} of {args.reps} measurements failed", file=sys.stderr)
        cpu = [r["cpu_us"] for r in rows if "cpu_us" in r]
        print(
            f"| {client} | {_range([r['p50_us'] for r in rows if 'p50_us' in r])} "
            f"| {_range(rates)} | {_range(cpu, 1) if cpu else '-'} | {_range(ratios, 2)} |"
        )


if __name__ == "__main__":
    main()
