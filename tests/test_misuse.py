"""An asyncio Session used from another thread or event loop says so, and what to do instead."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import BackgroundDevServer


@pytest.fixture
def dev(jamsocket_dev_server: BackgroundDevServer) -> BackgroundDevServer:
    return jamsocket_dev_server


async def test_another_loop_or_thread_is_named(dev: BackgroundDevServer) -> None:
    async with jrt.Session(dev.connect()) as session:
        errors: dict[str, BaseException] = {}
        answers: list[Any] = []
        loop = asyncio.get_running_loop()

        def in_a_thread() -> None:
            async def misuse() -> None:
                for name, attempt in (
                    ("send", lambda: session.send("ping", 1)),
                    ("call", lambda: session.call("echo", 1)),
                ):
                    try:
                        await attempt()
                    except RuntimeError as exc:
                        errors[name] = exc
                try:
                    session.wait_for("pong")
                except RuntimeError as exc:
                    errors["wait_for"] = exc

            asyncio.run(misuse())  # a second event loop, in another thread
            # The remedy the message gives works:
            future = asyncio.run_coroutine_threadsafe(session.call("echo", "ok"), loop)
            answers.append(future.result(10))

        thread = threading.Thread(target=in_a_thread, name="bot-worker")
        await asyncio.to_thread(thread.start)
        await asyncio.to_thread(thread.join, 30)
        assert set(errors) == {"send", "call", "wait_for"}
        for error in errors.values():
            message = str(error)
            assert "another event loop" in message
            assert "'bot-worker'" in message
            assert "SyncSession" in message
            assert "run_coroutine_threadsafe" in message
        assert answers == ["ok"]
        assert await session.call("echo", 2) == 2  # the session itself is unharmed
