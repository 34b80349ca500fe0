"""Tokens that expire mid-session: the dev server's proxy answers 410 and drops their connections.

With a ``connect`` callable the Session renews the token and carries on, losing nothing that
was queued; without one, everything waiting fails with TokenExpired, promptly.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import backend_command
from tests.helpers.sessions import reached_backend


@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_expire_tokens_answers_410_and_drops_live_connections(
    dev: DevServer, api: jrt.Jamsocket
) -> None:
    old = await api.connect(key="room")
    async with jrt.Session(old) as s:
        dropped = asyncio.Event()
        s.on_disconnect(lambda error: dropped.set())
        other = await api.connect(key="room")  # a token handed out before the expiry...
        assert dev.expire_tokens(old.backend_id) == 2
        await asyncio.wait_for(dropped.wait(), 2)  # ...and the live connection is dropped
        async with aiohttp.ClientSession() as http:
            for response in (old, other):
                async with http.get(response.url + "socket.io/?EIO=4&transport=polling") as got:
                    assert got.status == 410
            fresh = await api.connect(key="room")
            assert fresh.backend_id == old.backend_id, "the backend itself goes on"
            async with http.get(fresh.url) as got:
                assert got.status == 200
    assert dev.expire_tokens("no-such-backend") == 0


async def test_renewal_carries_on_and_loses_nothing_queued(
    dev: DevServer, api: jrt.Jamsocket
) -> None:
    responses: list[jrt.ConnectResponse] = []

    async def connect() -> jrt.ConnectResponse:
        responses.append(await api.connect(key="renew"))
        return responses[-1]

    async with jrt.Session(connect=connect, reconnect_delay=(0.05, 0.5)) as s:
        back = asyncio.Event()
        dropped = asyncio.Event()
        s.on_reconnect(back.set)
        s.on_disconnect(lambda error: dropped.set())
        for seq in range(50):
            await s.send("record", seq)
        assert await s.call("records") == list(range(50))
        assert s.backend_id is not None
        dev.expire_tokens(s.backend_id)
        await asyncio.wait_for(dropped.wait(), 2)
        for seq in range(50, 100):
            await s.send("record", seq)  # queued until the renewed token connects
        await asyncio.wait_for(back.wait(), 5)
        assert await s.call("records") == list(range(100))
        assert len(responses) == 2
        assert s.response is responses[1]
        assert len({r.token for r in responses}) == 2
        assert s.backend_id == responses[0].backend_id


@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_without_connect_waiters_get_token_expired_promptly(
    dev: DevServer, api: jrt.Jamsocket
) -> None:
    async with jrt.Session(await api.connect()) as s:
        waiting = asyncio.ensure_future(s.wait_for("never", timeout=30))
        in_flight = asyncio.ensure_future(s.call("sleep", 30, timeout=30))
        await reached_backend(s)
        assert s.backend_id is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        dev.expire_tokens(s.backend_id)
        with pytest.raises(jrt.TokenExpired, match="410 Gone"):
            await asyncio.wait_for(waiting, 2)
        assert loop.time() - started < 2
        # The call was cut by the drop: it may or may not have arrived, and it says so.
        with pytest.raises(jrt.ConnectionLost):
            await in_flight
        with pytest.raises(jrt.TokenExpired):
            await s.send("record", 1)
        assert s.terminated is None, "an expired token is not a terminated backend"


@pytest.mark.slow
@pytest.mark.parametrize("backend_flavour", ["python"], indirect=True)
async def test_token_lifetime_expires_tokens_and_a_session_keeps_renewing(
    backend_flavour: str,
) -> None:
    dev = DevServer(backend=backend_command(backend_flavour), quiet=True, token_lifetime=0.5)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        renewals = 0

        async def connect() -> jrt.ConnectResponse:
            nonlocal renewals
            renewals += 1
            return await api.connect(key="short-lived")

        async with jrt.Session(connect=connect, reconnect_delay=(0.05, 0.2)) as s:
            answers: list[int] = []
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.0
            while loop.time() < end:
                # Idempotent, so retry=True (at-least-once) is safe across the expiries.
                answers.append(await s.call("echo", len(answers), retry=True, timeout=10))
                await asyncio.sleep(0.02)  # pacing: calls spread over the 2 s, not a wait
        assert answers == list(range(len(answers)))
        assert renewals >= 3, "each token lived half a second"


def test_token_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="token_lifetime"):
        DevServer(token_lifetime=0)
