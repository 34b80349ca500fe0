"""One configuration of the feature prices, in a process of its own, driven by ``features.py``.

    python -m benchmarks.feature_client --config CONFIG [--loop asyncio|uvloop] SPEC_JSON

CONFIG is what is priced, each a :class:`jamsocket_rt.Session` as a program would open it:

- ``plain``: the Session's defaults (JSON parser, one namespace, wire trace off);
- ``namespaces``: a second namespace on the same connection (``session.namespace(...)``): the
  calls and pings alternate between the two, so each carries half of the load;
- ``recovery``: the defaults, against a server with connection state recovery on (every event
  it emits carries an offset, which the Session takes off);
- ``msgpack``: ``parser="msgpack"``, against a server speaking socket.io-msgpack-parser;
- ``trace``: the ``jamsocket_rt.wire`` logger at DEBUG, its every record formatted (time, name,
  level, message) into a stream that drops it: what tracing costs a program, but the I/O.

SPEC_JSON: ``{"response": ConnectResponse as a dict, "namespace": "/second",
"warmup_first": seconds}``. It connects, runs ``warmup_first`` seconds of pipelined calls,
prints ``{"ready": true, "versions": {...}}`` and then runs one scenario per line of standard
input (``{"id", "kind", "payload", "binary", "window", "duration", "warmup"}``, ``kind`` one of
``seq``, ``pipe``, ``echo`` as in ``benchmarks/client.py``, whose measurements these are), printing
one result line each: ``count``, ``rate``, ``cpu_us`` (this process's CPU time per message), and
for ``seq`` ``p50_us`` and ``p99_us``. ``binary``: the payload is bytes (with JSON, a binary
attachment), else a string.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .client import (
    Call,
    Pongs,
    echo,
    emit,
    payload_of,
    pipelined,
    run_on,
    sequential,
    versions,
)

if TYPE_CHECKING:
    from jamsocket_rt.protocol.options import ParserName

CONFIGS = ("plain", "namespaces", "recovery", "msgpack", "trace")


class NullStream:
    """A text stream that drops what is written to it (the wire trace's destination)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def trace_on() -> None:
    """Turns the wire trace on as a program would (``jamsocket-rt connect --trace`` too): the
    ``jamsocket_rt.wire`` logger at DEBUG with a handler formatting every record."""
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    wire = logging.getLogger("jamsocket_rt.wire")
    wire.addHandler(handler)
    wire.setLevel(logging.DEBUG)
    wire.propagate = False


def alternate(functions: list[Call]) -> Call:
    """One of ``functions`` after the other, as one function (the namespaces' share of a load).

    It returns the chosen function's coroutine itself, so that the price of alternating is one
    plain call per message, not another coroutine.
    """
    if len(functions) == 1:
        return functions[0]
    turn = itertools.cycle(functions).__next__

    def alternating(event: str, payload: Any) -> Any:
        return turn()(event, payload)

    return alternating


def payload_for(scenario: dict[str, Any]) -> str | bytes:
    size = int(scenario["payload"])
    if scenario.get("binary"):
        return bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    return payload_of(size)


class Opened:
    """The configuration, connected: the calls and sends the measurements make, and the pongs."""

    def __init__(self, config: str, spec: dict[str, Any]) -> None:
        self.config = config
        self.spec = spec
        self.pongs = Pongs()
        self.call: Call = self._unset
        self.send: Call = self._unset
        self.close: Callable[[], Any] = self._unset

    @staticmethod
    async def _unset(*args: Any) -> Any:
        raise RuntimeError("not connected")

    async def open(self) -> dict[str, Any]:
        """Connects; returns what the ready line says of the configuration.

        Raises:
            RuntimeError: the server does not do what the configuration prices.
        """
        import jamsocket_rt as jrt

        if self.config == "trace":
            trace_on()
        response = jrt.ConnectResponse.from_dict(self.spec["response"])
        parser: ParserName = "msgpack" if self.config == "msgpack" else "json"
        session = jrt.Session(response, parser=parser)
        session.on("pong", self.pongs)
        await session.connect()
        self.close = session.close
        spaces: list[Any] = [session]
        if self.config == "namespaces":
            second = session.namespace(self.spec["namespace"])
            second.on("pong", self.pongs)
            await second.wait_connected(30)
            spaces.append(second)
        self.call = alternate([space.call for space in spaces])
        self.send = alternate([space.send for space in spaces])
        details: dict[str, Any] = {"namespaces": [space.name for space in spaces]}
        if self.config == "recovery":
            # The server's CONNECT answer gave a private session id: it appends offsets.
            details["recovery_pid"] = session._recovery.pid is not None
            if not details["recovery_pid"]:
                raise RuntimeError("the server has connection state recovery off")
        return details

    async def run(self, kind: str, payload: Any, window: int, seconds: float) -> dict[str, Any]:
        if kind == "seq":
            return await sequential(self.call, payload, seconds)
        if kind == "pipe":
            return await pipelined(self.call, payload, window, seconds)
        if kind == "echo":
            return await echo(self.send, self.pongs, payload, window, seconds)
        raise ValueError(f"unknown scenario kind {kind!r}")

    async def measure(self, scenario: dict[str, Any]) -> dict[str, Any]:
        payload = payload_for(scenario)
        kind, window = scenario["kind"], int(scenario.get("window", 1))
        if scenario.get("warmup"):
            await self.run(kind, payload, window, scenario["warmup"])
        if scenario["duration"] >= 0.1:  # (not in the smoke run, where it would dominate)
            gc.collect()
        cpu = time.process_time()
        result = await self.run(kind, payload, window, scenario["duration"])
        result["cpu_us"] = (time.process_time() - cpu) / max(1, result["count"]) * 1e6
        return result


async def serve(args: argparse.Namespace) -> None:
    spec = json.loads(args.spec)
    opened = Opened(args.config, spec)
    try:
        details = await opened.open()
        if spec.get("warmup_first"):
            await pipelined(opened.call, payload_of(64), 64, spec["warmup_first"])
    except Exception as exc:
        emit({"config": args.config, "error": f"{type(exc).__name__}: {exc}"})
        return
    try:
        shown = argparse.Namespace(
            client="session",
            loop=args.loop,
            json="default",
            parser="msgpack" if args.config == "msgpack" else "json",
        )
        emit({"ready": True, "config": args.config, "versions": versions(shown), **details})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if not line.strip():
                continue
            scenario = json.loads(line)
            try:
                result = await opened.measure(scenario)
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            emit({"id": scenario["id"], **result})
    finally:
        await opened.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feature_client")
    parser.add_argument("--config", choices=CONFIGS, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("spec")
    args = parser.parse_args(argv)
    run_on(args.loop, serve(args))


if __name__ == "__main__":
    main()
