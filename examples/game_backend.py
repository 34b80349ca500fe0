"""A small server-authoritative game: players chase coins on a shared grid.

Run it as a session backend (the dev server gives it ``PORT``)::

    jamsocket-rt dev --backend "python examples/game_backend.py"

Protocol:
    on connect     the server emits ``joined`` {"player": id, "width", "height"} to the player
    ``move``       {"dx": -1..1, "dy": -1..1, "seq": n}: queued, applied at the next tick
                   (one move per player per tick; the latest wins)
    ``state``      broadcast every tick (``TICK_HZ`` per second): {"tick", "players":
                   {id: {"x", "y", "score", "last_seq"}}, "coins": [[x, y], ...]}
    ``scores``     (acknowledged) the scores so far: {id: score}

The server owns the truth: clients only send intentions, and see their effect in ``state``.
``last_seq`` tells a client which of its inputs the server has applied.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import socketio
from aiohttp import web

TICK_HZ = 20
WIDTH, HEIGHT = 16, 12
COINS = 5


class Game:
    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)
        self.players: dict[str, dict[str, int]] = {}
        self.pending: dict[str, tuple[int, int, int]] = {}
        self.coins: set[tuple[int, int]] = set()
        self.tick = 0
        while len(self.coins) < COINS:
            self.coins.add(self.free_cell())

    def free_cell(self) -> tuple[int, int]:
        taken = {(p["x"], p["y"]) for p in self.players.values()} | self.coins
        while True:
            cell = (self.random.randrange(WIDTH), self.random.randrange(HEIGHT))
            if cell not in taken:
                return cell

    def join(self, player: str) -> None:
        x, y = self.free_cell()
        self.players[player] = {"x": x, "y": y, "score": 0, "last_seq": 0}

    def leave(self, player: str) -> None:
        self.players.pop(player, None)
        self.pending.pop(player, None)

    def move(self, player: str, intent: Any) -> None:
        if player not in self.players or not isinstance(intent, dict):
            return
        try:
            dx, dy, seq = (int(intent.get(k, 0)) for k in ("dx", "dy", "seq"))
        except (TypeError, ValueError):
            return
        self.pending[player] = (max(-1, min(1, dx)), max(-1, min(1, dy)), seq)

    def step(self) -> dict[str, Any]:
        self.tick += 1
        for player, (dx, dy, seq) in self.pending.items():
            state = self.players.get(player)
            if state is None:
                continue
            state["x"] = max(0, min(WIDTH - 1, state["x"] + dx))
            state["y"] = max(0, min(HEIGHT - 1, state["y"] + dy))
            state["last_seq"] = seq
            cell = (state["x"], state["y"])
            if cell in self.coins:
                state["score"] += 1
                self.coins.discard(cell)
                self.coins.add(self.free_cell())
        self.pending.clear()
        return {
            "tick": self.tick,
            "players": {p: dict(s) for p, s in self.players.items()},
            "coins": sorted([list(c) for c in self.coins]),
        }


def build(game: Game) -> tuple[web.Application, socketio.AsyncServer]:
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        game.join(sid)
        await sio.emit("joined", {"player": sid, "width": WIDTH, "height": HEIGHT}, to=sid)

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, reason: Any = None) -> None:
        game.leave(sid)

    @sio.on("move")  # type: ignore[untyped-decorator]
    async def move(sid: str, intent: Any = None) -> None:
        game.move(sid, intent)

    @sio.on("scores")  # type: ignore[untyped-decorator]
    async def scores(sid: str, *args: Any) -> dict[str, int]:
        return {p: s["score"] for p, s in game.players.items()}

    async def ticker(app: web.Application) -> Any:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            next_tick = loop.time()
            while True:
                next_tick += 1 / TICK_HZ  # an absolute schedule: no drift
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
                await sio.emit("state", game.step())

        task = asyncio.create_task(run())
        yield
        task.cancel()

    app.cleanup_ctx.append(ticker)
    return app, sio


def main() -> None:
    port = int(os.environ["PORT"])
    app, _ = build(Game())
    print(f"game listening on {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
