"""Inbound limits: nothing the server sends makes the client buffer without bound.

- A message over ``max_payload`` ends the connection (clearly reported), is never delivered,
  and the session reconnects.
- Slow async handlers: at ``max_backlog`` queued handler runs the session stops reading (the
  server's events wait unread in TCP buffers) and resumes at half; nothing is lost or reordered.
- A slow ``stream()`` consumer meets its overflow policy: "error", "drop_oldest", or "pause"
  (back-pressure, nothing lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from jamsocket_rt.protocol.options import TransportName
from tests.helpers.backends import backend_command
from tests.helpers.polling import eventually


@pytest.fixture
async def api() -> AsyncIterator[jrt.Jamsocket]:
    async with (
        DevServer(backend=backend_command("python"), quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as client,
    ):
        yield client


async def test_a_message_over_max_payload_ends_the_connection_clearly(api: jrt.Jamsocket) -> None:
    async with jrt.Session(
        await api.connect(), max_payload=10_000, reconnect_delay=(0.05, 0.2)
    ) as s:
        got: list[int] = []
        errors: list[BaseException | None] = []
        back = asyncio.Event()
        s.on("item", lambda item: got.append(len(item["payload"])))
        s.on_disconnect(errors.append)
        s.on_reconnect(back.set)
        await s.send("emit_many", {"event": "item", "count": 1, "payload": "x" * 5_000})
        await s.send("emit_many", {"event": "item", "count": 1, "payload": "x" * 20_000})
        await asyncio.wait_for(back.wait(), 5)
        assert got == [5_000], "the oversized message was never delivered"
        assert len(errors) == 1
        assert "max_payload" in str(errors[0])
        assert await s.call("echo", "still here") == "still here"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_slow_handlers_pause_reading_and_lose_nothing(
    api: jrt.Jamsocket, transport: TransportName
) -> None:
    async with jrt.Session(await api.connect(), transports=[transport], max_backlog=20) as s:
        got: list[int] = []
        peak = 0

        async def slow(item: dict[str, Any]) -> None:
            nonlocal peak
            peak = max(peak, len(s._backlog))
            await asyncio.sleep(0.001)  # the scenario: a slow handler
            got.append(item["i"])

        s.on("item", slow)
        await s.send("emit_many", {"event": "item", "count": 500, "payload": "p" * 100})
        await eventually(lambda: len(got) == 500, timeout=20)
        assert got == list(range(500)), "nothing lost, nothing reordered"
        assert s.read_pauses >= 1
        if transport == "websocket":
            # One websocket message is one event: reading stops at the high-water mark.
            assert peak <= 20
        # (Long-polling delivers a whole poll response before the pause takes effect: its
        # bound is the server's buffer per poll, as the README says.)
        assert await s.call("echo", "after") == "after"


async def test_stream_overflow_policies(api: jrt.Jamsocket) -> None:
    async with jrt.Session(await api.connect()) as s:
        spec = {"event": "item", "count": 300, "payload": None}

        # "error": the stream ends with StreamOverflow after the events it could hold.
        failing = s.stream("item", maxsize=10)
        assert await s.call("emit_many", spec) == 300  # all 300 have arrived by now
        taken = [(await failing.__anext__())["i"] for _ in range(10)]
        assert taken == list(range(10))
        with pytest.raises(jrt.StreamOverflow, match="fell 10 events behind"):
            await failing.__anext__()

        # "drop_oldest": the newest are kept, the dropped are counted.
        dropping = s.stream("item", maxsize=10, overflow="drop_oldest")
        assert await s.call("emit_many", spec) == 300
        async with dropping:
            kept = [(await dropping.__anext__())["i"] for _ in range(10)]
        assert kept == list(range(290, 300))
        assert dropping.dropped == 290

        # "pause": the session stops reading while the consumer is behind; nothing is lost.
        pausing = s.stream("item", maxsize=10, overflow="pause")
        pauses = s.read_pauses
        await s.send("emit_many", spec)  # no ack to wait for: it would wait behind the events
        received = []
        peak = 0
        async with pausing:
            for _ in range(300):
                peak = max(peak, len(pausing._buffer))
                received.append((await pausing.__anext__())["i"])
                await asyncio.sleep(0.0005)  # the scenario: a slow consumer
        assert received == list(range(300))
        assert s.read_pauses > pauses
        assert peak <= 11
        assert await s.call("echo", "after") == "after"
