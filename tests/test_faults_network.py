"""Network cuts between a Session and its backend: resets, refusals, black holes.

A :class:`~faultproxy.FaultProxy` sits between the Session and the dev server's token proxy; the
backend numbers what it receives (``record`` / ``records``), so every test can count what was
lost, duplicated or reordered. Nothing is mocked: real sockets, real resets, real processes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.sessions import reached_backend

# The example backend pinging every second with a 1 s timeout, so that a black hole is noticed
# within 2 s (with the servers' defaults, 25 + 20 s). python-engineio announces whole seconds.
FAST_PING_BACKEND = """
from jamsocket_rt.dev import example_backend

class FastPing(example_backend.ExampleBackend):
    def __init__(self, backend_id):
        super().__init__(backend_id)
        self.sio.eio.ping_interval = 1
        self.sio.eio.ping_timeout = 1

example_backend.ExampleBackend = FastPing
example_backend.main()
"""


class Watch:
    """Records a Session's disconnects and reconnects, and lets a test wait for the next."""

    def __init__(self, session: jrt.Session) -> None:
        self.errors: list[BaseException | None] = []
        self.reconnects = 0
        self._changed = asyncio.Event()
        session.on_disconnect(self._disconnected)
        session.on_reconnect(self._reconnected)

    def _disconnected(self, error: BaseException | None) -> None:
        self.errors.append(error)
        self._changed.set()

    def _reconnected(self) -> None:
        self.reconnects += 1
        self._changed.set()

    async def until(self, condition: Callable[[], Any], timeout: float) -> None:
        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def fault(dev: DevServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(port_of(dev.proxy_url)) as proxy:
        yield proxy


async def test_reset_then_refused_loses_nothing_that_was_queued(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    async with jrt.Session(
        through(await api.connect(), url=fault), reconnect_delay=(0.05, 0.5)
    ) as s:
        watch = Watch(s)
        for seq in range(100):
            await s.send("record", seq)
        # The acknowledgement comes after everything sent before it: all 100 arrived.
        assert await s.call("records") == list(range(100))

        fault.reset_all()
        fault.refuse(1.0)  # the path stays closed for a second: attempts are refused
        await watch.until(lambda: watch.errors, timeout=2)
        assert isinstance(watch.errors[0], ConnectionError)
        assert not s.connected
        for seq in range(100, 200):
            await s.send("record", seq)  # queued while disconnected

        await watch.until(lambda: watch.reconnects, timeout=10)
        assert await s.call("records") == list(range(200)), "nothing lost, nothing twice"
        assert watch.reconnects == 1
        assert fault.accepted >= 2


async def test_what_a_reset_can_lose_is_a_run_of_sends_just_before_it(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    """Fire-and-forget sends written to a connection that is then cut may be lost: only those.

    The backend ends up with a prefix of what was sent before the cut (TCP keeps order), then
    every send made after the loss was noticed, exactly once and in order.
    """
    async with jrt.Session(
        through(await api.connect(), url=fault), reconnect_delay=(0.05, 0.5)
    ) as s:
        watch = Watch(s)
        for seq in range(50):
            await s.send("record", seq)  # written to the socket at once, or in this iteration
        fault.reset_all()  # before the loop ran again: most of them are still in buffers
        await watch.until(lambda: watch.errors, timeout=2)
        for seq in range(50, 100):
            await s.send("record", seq)
        await watch.until(lambda: watch.reconnects, timeout=10)
        records = await s.call("records")
    kept = next((i for i, value in enumerate(records) if value >= 50), len(records))
    assert records[:kept] == list(range(kept)), "what got through before the cut is a prefix"
    assert records[kept:] == list(range(50, 100)), "everything queued after it, exactly once"


async def test_a_call_cut_by_a_reset_fails_promptly_or_is_retried(
    api: jrt.Jamsocket, fault: FaultProxy
) -> None:
    async with jrt.Session(
        through(await api.connect(), url=fault), reconnect_delay=(0.05, 0.5)
    ) as s:
        watch = Watch(s)
        cut = asyncio.ensure_future(s.call("sleep", 5, timeout=30))
        kept = asyncio.ensure_future(s.call("sleep", 0.2, timeout=30, retry=True))
        await reached_backend(s)  # both are with the backend now
        fault.reset_all()
        fault.refuse(0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(jrt.ConnectionLost, match="dropped while waiting"):
            await asyncio.wait_for(cut, 2)
        assert loop.time() - started < 2
        # The retried call was sent again after the reconnect (at-least-once) and answered.
        assert await asyncio.wait_for(kept, 10) is True
        assert watch.reconnects == 1
        # A call made while disconnected is queued like a send, not failed.
        assert await s.call("echo", "after") == "after"


@pytest.mark.slow
async def test_a_black_hole_is_noticed_by_the_ping_timeout() -> None:
    dev = DevServer(backend=[sys.executable, "-c", FAST_PING_BACKEND], quiet=True)
    async with (
        dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
        FaultProxy(port_of(dev.proxy_url)) as fault,
    ):
        response = through(await api.connect(), url=fault)
        async with jrt.Session(response, connect_timeout=1, reconnect_delay=(0.05, 0.3)) as s:
            watch = Watch(s)
            for seq in range(50):
                await s.send("record", seq)
            assert await s.call("records") == list(range(50))

            fault.blackhole()  # no reset, no refusal: silence both ways
            before_the_hole = fault.accepted
            for seq in range(50, 60):
                await s.send("record", seq)  # into the hole, before anyone can know
            await watch.until(lambda: watch.errors, timeout=5)
            assert isinstance(watch.errors[0], TimeoutError)
            assert "no ping" in str(watch.errors[0])
            for seq in range(60, 100):
                await s.send("record", seq)  # queued: the loss is known
            # A reconnect attempt meets the hole (accepted, never answered) before it heals.
            await eventually(lambda: fault.accepted > before_the_hole, message="no attempt")
            await fault.heal()
            await watch.until(lambda: watch.reconnects, timeout=10)
            records = await s.call("records")
    # What went into the hole before the ping timeout is lost, and only that.
    assert records == list(range(50)) + list(range(60, 100))
