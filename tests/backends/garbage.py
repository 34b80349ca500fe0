"""A session backend that speaks Socket.IO until asked to send garbage (for "parse error").

    PORT=8080 python tests/backends/garbage.py

It accepts the websocket upgrade on any path, sends the Engine.IO OPEN and answers the
Socket.IO CONNECT, acknowledges ``echo`` with its arguments, and answers the event
``garbage`` with a message that is not Socket.IO at all.
"""

from __future__ import annotations

import json
import os

from aiohttp import web

OPEN = '0{"sid":"garbage","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(OPEN)
    async for message in ws:
        text = str(message.data)
        if text.startswith("40"):
            await ws.send_str('40{"sid":"garbage-socket"}')
        elif text.startswith("42"):  # an event, perhaps with an ack id: 42<id>[...]
            head, _, body = text[2:].partition("[")
            name, *args = json.loads("[" + body)
            if name == "garbage":
                await ws.send_str("42[not json at all")
            elif name == "echo" and head:
                await ws.send_str("43" + head + json.dumps(args))
        elif text == "3":  # (a pong)
            continue
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/{tail:.*}", socket)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    main()
