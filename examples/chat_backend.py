"""A chat room session backend, for examples/chat_bot.py.

Events:
    ``say`` (text)          from a client: broadcast to everyone as ``chat``
                            {"id", "user", "text"} (user: the x-verified-username, or the sid)
    ``delete`` (id)         from a moderator: broadcast ``deleted`` {"id"}
    ``history`` (ack)       the messages so far, without the deleted ones
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
app = web.Application()
sio.attach(app)
messages: dict[int, dict[str, Any]] = {}
ids = itertools.count(1)
users: dict[str, str] = {}


@sio.event  # type: ignore[untyped-decorator]
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    users[sid] = environ.get("HTTP_X_VERIFIED_USERNAME") or sid[:6]


@sio.event  # type: ignore[untyped-decorator]
async def disconnect(sid: str, reason: Any = None) -> None:
    users.pop(sid, None)


@sio.on("say")  # type: ignore[untyped-decorator]
async def say(sid: str, text: Any = "") -> None:
    message = {"id": next(ids), "user": users.get(sid, "?"), "text": str(text)[:500]}
    messages[message["id"]] = message
    await sio.emit("chat", message)


@sio.on("delete")  # type: ignore[untyped-decorator]
async def delete(sid: str, message_id: Any = None) -> None:
    if messages.pop(message_id, None) is not None:
        await sio.emit("deleted", {"id": message_id})


@sio.on("history")  # type: ignore[untyped-decorator]
async def history(sid: str, *args: Any) -> list[dict[str, Any]]:
    return list(messages.values())


if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
