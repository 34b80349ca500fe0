"""The example chat bot answers, moderates, and survives its backend restarting under a key."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.paths import EXAMPLES_DIR
from tests.helpers.polling import eventually

sys.path.insert(0, str(EXAMPLES_DIR))
import chat_bot


async def chat_until(session: jrt.Session, predicate: Any, timeout: float = 10) -> dict[str, Any]:
    async def first_match() -> dict[str, Any]:
        async for message in session.stream("chat"):
            if predicate(message):
                return dict(message)
        raise AssertionError("the chat stream ended")

    return await asyncio.wait_for(first_match(), timeout)  # (asyncio.timeout is Python 3.11+)


async def test_bot_replies_moderates_and_survives_a_restart() -> None:
    backend = [sys.executable, str(EXAMPLES_DIR / "chat_backend.py")]
    dev = DevServer(backend=backend, quiet=True)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        bot = chat_bot.ChatBot(lambda: api.connect(key="lobby", user=chat_bot.NAME))
        running = asyncio.ensure_future(bot.run())
        try:
            await asyncio.wait_for(bot.ready.wait(), 20)
            async with jrt.Session(await api.connect(key="lobby", user="ada")) as user:
                pong = asyncio.ensure_future(chat_until(user, lambda m: m["text"] == "pong"))
                await user.send("say", "!ping")
                assert (await pong)["user"] == chat_bot.NAME

                deleted = user.wait_for("deleted", timeout=10)
                await user.send("say", "cheap SPAM here")
                gone = await deleted
                history = await user.call("history")
                assert gone["id"] not in [m["id"] for m in history]
                assert any("banned word" in m["text"] for m in history)
                first_backend = user.backend_id

            # The room's backend dies; the bot comes back by key to a fresh one.
            assert first_backend is not None
            await api.terminate(first_backend, hard=True)
            await eventually(
                lambda: bot.sessions == 2 and bot.ready.is_set(),
                message=lambda: f"the bot is not back: {bot.sessions} sessions",
            )
            assert bot.sessions == 2, "the bot joined the room's new backend"
            async with jrt.Session(await api.connect(key="lobby", user="ada")) as user:
                assert user.backend_id != first_backend
                pong = asyncio.ensure_future(chat_until(user, lambda m: m["text"] == "pong"))
                await user.send("say", "!ping")
                await pong
        finally:
            bot.stop()
            await asyncio.wait_for(running, 10)
