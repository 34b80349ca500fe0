"""The example game backend and bots, through the dev server: several bots, one room."""

from __future__ import annotations

import asyncio
import sys

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.paths import EXAMPLES_DIR

sys.path.insert(0, str(EXAMPLES_DIR))
import game_bot


@pytest.mark.slow
async def test_several_bots_play_one_room() -> None:
    backend = [sys.executable, str(EXAMPLES_DIR / "game_backend.py")]
    async with (
        DevServer(backend=backend, quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        results = await asyncio.gather(
            *(game_bot.play(lambda: api.connect(key="arena"), seconds=3) for _ in range(4))
        )
    players = {r["player"] for r in results}
    assert len(players) == 4, "every bot joined as its own player"
    assert all(r["moves"] > 20 for r in results), results
    assert sum(r["score"] for r in results) > 0, "greedy bots pick up coins"


def test_next_move_heads_for_the_nearest_coin() -> None:
    me = {"x": 5, "y": 5}
    assert game_bot.next_move(me, [[9, 5], [5, 3]]) == {"dx": 0, "dy": -1}
    assert game_bot.next_move(me, [[7, 9]]) == {"dx": 1, "dy": 0}
    assert game_bot.next_move(me, []) == {"dx": 0, "dy": 0}


async def test_a_player_keeps_its_queued_inputs_across_a_token_expiry() -> None:
    backend = [sys.executable, str(EXAMPLES_DIR / "game_backend.py")]
    dev = DevServer(backend=backend, quiet=True)
    async with dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        renewals = 0

        async def connect() -> jrt.ConnectResponse:
            nonlocal renewals
            renewals += 1
            return await api.connect(key="arena")

        player = jrt.Session(connect=connect, reconnect_delay=(0.05, 0.2))
        me: list[str] = []
        player.on("joined", lambda info: me.append(info["player"]))
        async with player:
            back = asyncio.Event()
            dropped = asyncio.Event()
            player.on_reconnect(back.set)
            player.on_disconnect(lambda error: dropped.set())
            assert player.backend_id is not None
            dev.expire_tokens(player.backend_id)  # the proxy drops us and answers 410
            await asyncio.wait_for(dropped.wait(), 10)
            for seq in range(1, 4):  # inputs made while the player is cut off
                await player.send("move", {"dx": 1, "dy": 0, "seq": seq})
            await asyncio.wait_for(back.wait(), 10)
            assert renewals == 2, "the token was renewed through connect()"

            async def caught_up() -> None:
                async for state in player.stream("state"):
                    mine = state["players"].get(me[-1])
                    if mine is not None and mine["last_seq"] == 3:
                        return

            await asyncio.wait_for(caught_up(), 10)  # (asyncio.timeout is Python 3.11+)
