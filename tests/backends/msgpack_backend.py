"""A python-socketio session backend speaking msgpack (twin of tests/node/msgpack_backend.js).

    PORT=8080 python tests/backends/msgpack_backend.py

``AsyncServer(serializer="msgpack")``. Namespaces "/" and "/admin" answer ``whoami`` (with
{nsp, sid, transport, auth}), ``echo``, ``describe``, ``push`` (name, *args), ``ask`` (name,
*args), ``binary``, ``malformed`` and ``kick`` like the Node twin; "/locked" refuses every
CONNECT.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", serializer="msgpack")
auths: dict[tuple[str, str], Any] = {}


def describe(value: Any) -> Any:
    """What a value is on this side, binary values as "<binary n>"."""
    if isinstance(value, bytes):
        return f"<binary {len(value)}>"
    if isinstance(value, (list, tuple)):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return {key: describe(item) for key, item in value.items()}
    return value


def serve(nsp: str) -> None:
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auths[(nsp, sid)] = auth

    async def whoami(sid: str) -> dict[str, Any]:
        transport = sio.transport(sid, namespace=nsp)
        return {"nsp": nsp, "sid": sid, "transport": transport, "auth": auths.get((nsp, sid))}

    async def echo(sid: str, *args: Any) -> Any:
        return args

    async def describe_args(sid: str, *args: Any) -> Any:
        return describe(list(args))

    async def push(sid: str, name: str, *args: Any) -> None:
        await sio.emit(name, tuple(args), to=sid, namespace=nsp)

    async def ask(sid: str, name: str, *args: Any) -> None:
        async def answered(*answer: Any) -> None:
            await sio.emit("answer", list(answer), to=sid, namespace=nsp)

        await sio.emit(name, tuple(args), to=sid, namespace=nsp, callback=answered)

    async def binary(sid: str) -> None:
        payload = (bytes([0, 1, 2, 255]), {"nested": [b"hi"]})
        await sio.emit("binary", payload, to=sid, namespace=nsp)

    async def malformed(sid: str) -> None:
        await sio.eio.send(sio.manager.eio_sid_from_sid(sid, nsp), b"\xc1")

    async def kick(sid: str) -> None:
        await sio.disconnect(sid, namespace=nsp)

    sio.on("connect", connect, namespace=nsp)
    for name, handler in (
        ("whoami", whoami),
        ("echo", echo),
        ("describe", describe_args),
        ("push", push),
        ("ask", ask),
        ("binary", binary),
        ("malformed", malformed),
        ("kick", kick),
    ):
        sio.on(name, handler, namespace=nsp)


for name in ("/", "/admin"):
    serve(name)


async def refuse(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    raise socketio.exceptions.ConnectionRefusedError({"message": "locked", "code": 403})


sio.on("connect", refuse, namespace="/locked")


async def main() -> None:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"]))
    await site.start()
    print(f"listening on {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
