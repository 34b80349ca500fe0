"""Features for the people who use the Session: typed events, fixed-rate ticks, latency, display."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from attrs import frozen

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import backend_command
from tests.helpers.polling import eventually


@frozen
class Position:
    x: int
    y: int


@frozen
class Player:
    name: str
    position: Position
    score: int = 0


@dataclasses.dataclass
class Chat:
    user: str
    text: str


@pytest.fixture
async def session() -> AsyncIterator[jrt.Session]:
    dev = DevServer(backend=backend_command("python"), quiet=True)
    async with (
        dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        jrt.Session(await api.connect()) as s,
    ):
        yield s


async def test_typed_send_and_call_round_trip(session: jrt.Session) -> None:
    ada = Player("ada", Position(1, 2), score=3)
    assert await session.call("echo", ada) == {
        "name": "ada",
        "position": {"x": 1, "y": 2},
        "score": 3,
    }
    assert await session.call("echo", ada, type=Player) == ada
    assert await session.call("echo", Chat("bo", "hi"), type=Chat) == Chat("bo", "hi")


async def test_typed_listeners_waits_and_streams(session: jrt.Session) -> None:
    got: list[Player] = []
    errors: list[BaseException] = []
    session.on_error(errors.append)
    session.on("pong", got.append, type=Player)

    waited = session.wait_for("pong", timeout=5, type=Player)
    stream = session.stream("pong", type=Player)
    await session.send("ping", Player("ada", Position(0, 0)))
    assert await waited == Player("ada", Position(0, 0))
    assert await stream.__anext__() == Player("ada", Position(0, 0))

    # A payload that does not fit: the fields are named, the handler is not called.
    await session.send("ping", {"name": 5, "position": {"x": "1"}})
    with pytest.raises(jrt.InvalidResponse) as info:
        await stream.__anext__()
    message = str(info.value)
    assert "does not fit Player" in message
    assert "name: expected a string, got a number" in message
    assert "position.x: expected an integer" in message
    assert "position.y: required field is missing" in message
    await eventually(lambda: errors)  # the listener's own failure on the same payload
    assert got == [Player("ada", Position(0, 0))]
    assert len(errors) == 1
    assert isinstance(errors[0], jrt.InvalidResponse)

    with pytest.raises(jrt.InvalidResponse, match="acknowledgement of 'echo' does not fit"):
        await session.call("echo", {"name": "x"}, type=Player)


async def test_typed_decorator_and_off(session: jrt.Session) -> None:
    got: list[Position] = []

    @session.on("pong", type=Position)
    async def moved(position: Position) -> None:
        got.append(position)

    pong = session.wait_for("pong", timeout=5)
    await session.send("ping", Position(3, 4))
    await pong
    await eventually(lambda: got)
    assert got == [Position(3, 4)]
    assert session.off("pong", moved), "off() takes the user's function, not the adapter"


async def test_every_keeps_its_rate_and_counts_overruns(session: jrt.Session) -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    start = loop.time()
    ticker = session.every(0.05, lambda: times.append(loop.time()))
    await asyncio.sleep(0.53)  # the scenario: 0.53 s of ticking, then the counts
    ticker.cancel()
    # Never more ticks than the schedule has (10 in 0.53 s); a busy machine may run fewer.
    assert 1 <= ticker.ticks <= 11, ticker
    # An absolute schedule: tick n is due at start + n * interval, whatever the jitter; tick n
    # is never early (it can be late on a busy machine, or skipped, which makes n larger).
    assert times[-1] - start >= len(times) * 0.05 - 1e-3

    overruns: list[int] = []

    async def slow() -> None:
        await asyncio.sleep(0.13)  # the scenario: a tick that takes longer than the interval

    slow_ticker = session.every(0.05, slow, on_overrun=overruns.append)
    await asyncio.sleep(0.5)  # the scenario: 0.5 s of slow ticks, then the counts
    slow_ticker.cancel()
    assert slow_ticker.overruns > 0
    assert sum(overruns) == slow_ticker.overruns
    assert slow_ticker.ticks <= 5, "late ticks are skipped, not replayed in a burst"


async def test_every_reports_errors_and_stops_with_the_session(session: jrt.Session) -> None:
    errors: list[BaseException] = []
    session.on_error(errors.append)

    def boom() -> None:
        raise RuntimeError("tick failed")

    ticker = session.every(0.02, boom)
    await eventually(lambda: errors)
    assert ticker.running
    assert errors
    assert all(str(e) == "tick failed" for e in errors)
    await session.close()
    assert not ticker.running
    with pytest.raises(ValueError, match="interval"):
        jrt.Session(session.response).every(0, boom)


async def test_latency_from_calls_and_probes() -> None:
    dev = DevServer(backend=backend_command("python"), quiet=True)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        async with jrt.Session(await api.connect()) as s:
            assert s.latency.samples == 0
            await s.call("echo", 1)
            assert s.latency.samples == 1
            assert s.latency.last is not None
            assert s.latency.smoothed == s.latency.last
        probed = jrt.Session(await api.connect(), latency_probe="echo", latency_interval=0.05)
        async with probed:
            await eventually(lambda: probed.latency.samples >= 3, message="no probes while idle")
            assert probed.latency.samples >= 3, "probes keep measuring while idle"
        with pytest.raises(ValueError, match="latency_interval"):
            jrt.Session(await api.connect(), latency_probe="echo", latency_interval=0)


async def test_notebook_display(session: jrt.Session) -> None:
    assert session.response is not None
    token = session.response.token
    await session.call("echo", 1)
    html = session._repr_html_()
    assert str(session.backend_id) in html
    assert "ready" in html
    assert token not in html

    class Printer:
        text_out = ""

        def text(self, value: str) -> None:
            self.text_out += value

    printer = Printer()
    session._repr_pretty_(printer, False)
    assert "last round trip" in printer.text_out
    assert token not in printer.text_out
    shown: Any = session.display()
    assert shown is not None


def test_sync_session_typed_and_every(jamsocket_dev_server: Any) -> None:
    with jrt.SyncSession(jamsocket_dev_server.connect()) as s:
        assert s.call("echo", Position(1, 1), type=Position) == Position(1, 1)
        ticks: list[int] = []
        ticker = s.every(0.02, lambda: ticks.append(1))
        s.call("sleep", 0.15)
        ticker.cancel()
        assert ticks
        assert s.latency.samples >= 2
        assert "jamsocket_rt Session" in s._repr_html_()


async def test_live_widget_redraws_on_status_changes() -> None:
    pytest.importorskip("ipywidgets")
    dev = DevServer(backend=backend_command("python"), quiet=True)
    async with (
        dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        jrt.Session(await api.connect()) as s,
    ):
        widget = s.display()
        assert "ready" in widget.value
        ended = s.wait_for("never")
        assert s.backend_id is not None
        await api.terminate(s.backend_id)
        with pytest.raises(jrt.BackendTerminated):
            await ended
        assert "terminated" in widget.value, "the widget redrew on the terminal status"
