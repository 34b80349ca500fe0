"""A chat and moderation bot that stays in its room, even when the backend restarts.

It answers ``!ping`` and ``!time``, deletes messages with banned words (and says why), and
when the room's backend ends (crash, sweep, redeploy) it connects again by the room's key,
which spawns a fresh backend, and carries on::

    jamsocket-rt dev --backend "python examples/chat_backend.py" &
    JAMSOCKET_DEV=true python examples/chat_bot.py --room lobby
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jamsocket_rt as jrt

log = logging.getLogger("chat_bot")

BANNED = ("spam", "scam")
NAME = "modbot"


class ChatBot:
    """Replies and moderates in one room; ``run()`` until ``stop()``."""

    def __init__(self, connect: Callable[[], Awaitable[jrt.ConnectResponse]]) -> None:
        self._connect = connect
        self._stopped = asyncio.Event()
        self.sessions = 0  # how many backends it has served (restarts + 1)
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def handle(self, session: jrt.Session, message: dict[str, Any]) -> None:
        text = message["text"].strip()
        if message["user"] == NAME:
            return
        if any(word in text.lower() for word in BANNED):
            await session.send("delete", message["id"])
            await session.send("say", f"@{message['user']}: message removed (banned word)")
        elif text == "!ping":
            await session.send("say", "pong")
        elif text == "!time":
            await session.send("say", time.strftime("%H:%M:%S"))

    async def run(self) -> None:
        """Serve the room until stopped, reconnecting by key whenever its backend ends."""
        while not self._stopped.is_set():
            try:
                await self._serve_one_backend()
            except (jrt.BackendTerminated, jrt.ReadyTimeout, OSError) as exc:
                log.warning("lost the room (%s); joining again", type(exc).__name__)
            self.ready.clear()
            if not self._stopped.is_set():
                await asyncio.sleep(0.2)  # connect by key again: a fresh backend is spawned

    async def _serve_one_backend(self) -> None:
        session = jrt.Session(connect=self._connect, ready_timeout=30)
        session.on("chat", lambda message: self.handle(session, message))
        ended = asyncio.Event()
        session.on_terminated(lambda state: ended.set())
        async with session:
            self.sessions += 1
            self.ready.set()
            log.info("in the room (backend %s)", session.backend_id)
            waits = {
                asyncio.ensure_future(self._stopped.wait()),
                asyncio.ensure_future(ended.wait()),
            }
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--room", default="lobby")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    async def run() -> None:
        async with jrt.Jamsocket.from_env() as api:
            bot = ChatBot(lambda: api.connect(key=args.room, user=NAME))
            await bot.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
