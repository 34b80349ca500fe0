"""A bot that plays examples/game_backend.py: it walks to the nearest coin.

Run several against one room on the dev server::

    jamsocket-rt dev --backend "python examples/game_backend.py" &
    JAMSOCKET_DEV=true python examples/game_bot.py --bots 4 --seconds 10

Each bot reads the server's ``state`` as a stream that keeps only the newest state (a bot that
falls behind should act on the present, not replay the past), and sends one ``move`` per state.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import jamsocket_rt as jrt


def next_move(me: dict[str, int], coins: list[list[int]]) -> dict[str, int]:
    """One step toward the nearest coin (Manhattan distance)."""
    if not coins:
        return {"dx": 0, "dy": 0}
    x, y = me["x"], me["y"]
    cx, cy = min(coins, key=lambda c: abs(c[0] - x) + abs(c[1] - y))
    if cx != x:
        return {"dx": 1 if cx > x else -1, "dy": 0}
    return {"dx": 0, "dy": 1 if cy > y else -1 if cy < y else 0}


async def play(
    connect: Callable[[], Awaitable[jrt.ConnectResponse]], seconds: float
) -> dict[str, Any]:
    """Play for ``seconds``; returns the bot's player id, score and number of moves."""
    session = jrt.Session(connect=connect)
    player: str | None = None

    def joined(info: dict[str, Any]) -> None:
        nonlocal player
        player = info["player"]

    # Registered before connecting: "joined" is the first thing the server says.
    session.on("joined", joined)
    states = session.stream("state", maxsize=1, overflow="drop_oldest")
    moves = 0
    async with session:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        async for state in states:
            if loop.time() >= deadline:
                break
            me = state["players"].get(player)
            if me is None:
                continue
            moves += 1
            await session.send("move", {**next_move(me, state["coins"]), "seq": moves})
        await states.aclose()
        scores = await session.call("scores")
    return {"player": player, "score": scores.get(player, 0), "moves": moves}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bots", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--key", default="game-room")
    args = parser.parse_args()

    async def run() -> None:
        async with jrt.Jamsocket.from_env() as api:
            results = await asyncio.gather(
                *(play(lambda: api.connect(key=args.key), args.seconds) for _ in range(args.bots))
            )
        for result in results:
            print(result)

    asyncio.run(run())


if __name__ == "__main__":
    main()
