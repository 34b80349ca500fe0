"""Helpers for tests that drive a :class:`jamsocket_rt.Session` against an example backend."""

from __future__ import annotations

import asyncio

import jamsocket_rt as jrt


async def reached_backend(session: jrt.Session) -> None:
    """Returns once what was sent before, and what tasks started before made, is with the backend.

    It makes one more call (``echo``) and waits for its answer: one connection keeps the order,
    and the example backends take events in order without one holding up the next (``sleep``
    included). The call runs in a task of its own, started after every task created before
    this one (the loop starts tasks in order), so their sends and calls are written first.
    """
    await asyncio.ensure_future(session.call("echo", "reached_backend"))
