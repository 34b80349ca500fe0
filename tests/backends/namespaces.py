"""A python-socketio session backend with several namespaces (twin of namespace_backend.js).

    PORT=8080 python tests/backends/namespaces.py

Namespaces "/", "/admin" and "/game" answer ``whoami`` (with {nsp, sid, auth}), ``echo`` and
``push`` (name, *args) like tests/node/namespace_backend.js; "/locked" refuses every CONNECT.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
auths: dict[tuple[str, str], Any] = {}


def serve(nsp: str) -> None:
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        auths[(nsp, sid)] = auth

    async def whoami(sid: str) -> dict[str, Any]:
        return {"nsp": nsp, "sid": sid, "auth": auths.get((nsp, sid))}

    async def echo(sid: str, *args: Any) -> Any:
        return args

    async def push(sid: str, name: str, *args: Any) -> None:
        await sio.emit(name, tuple(args), to=sid, namespace=nsp)

    sio.on("connect", connect, namespace=nsp)
    sio.on("whoami", whoami, namespace=nsp)
    sio.on("echo", echo, namespace=nsp)
    sio.on("push", push, namespace=nsp)


for name in ("/", "/admin", "/game"):
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
