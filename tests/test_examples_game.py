"""The example game backend and bots, through the dev server: several bots, one room."""

from __future__ import annotations

import asyncio
import sys

from conftest import REPO_ROOT

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer

sys.path.insert(0, str(REPO_ROOT / "examples"))
import game_bot


async def test_several_bots_play_one_room() -> None:
    backend = [sys.executable, str(REPO_ROOT / "examples" / "game_backend.py")]
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
