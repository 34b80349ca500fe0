"""A user scenario for ``jamsocket-rt load``: a chatty client of the example backend.

Run it against the local dev server (started for the run) with 50 users, each doing two
iterations a second for 20 s, failing the run when a round trip's p99 passes 50 ms::

    jamsocket-rt load --scenario examples/load_scenario.py --sessions 50 --keys 5 \\
        --rate 2 --duration 20 --fail-if "p99>50ms" --json report.json

The runner calls ``setup`` once per session, then ``scenario`` once per iteration, paced by
``--rate``. Everything measured with ``user.call`` and ``user.measure`` shows up in the report
under its name; an exception that escapes an iteration is counted by kind and the session
carries on (unless its backend has gone).
"""

from __future__ import annotations

from typing import Any

import jamsocket_rt as jrt
from jamsocket_rt.load import VirtualUser


async def setup(session: jrt.Session, user: VirtualUser) -> None:
    """Once per session, before its first iteration: say who we are."""
    user.state["me"] = await user.call("whoami", name="whoami")


async def scenario(session: jrt.Session, user: VirtualUser) -> None:
    """One iteration: an acknowledged call, a ping answered by a pong, and a record."""
    # Timed as "echo": the round trip of a call with acknowledgement.
    reply: Any = await user.call("echo", {"user": user.index, "pad": user.payload})
    if reply["user"] != user.index:
        raise AssertionError("echo returned someone else's message")

    # Any block can be timed by name; listening starts before the send, so no pong is missed.
    with user.measure("ping-pong"):
        pong = session.wait_for("pong", timeout=user.call_timeout)
        await session.send("ping", user.iteration)
        await pong

    # Fire-and-forget: not timed, but a failure to send would still be counted.
    await session.send("record", [user.index, user.iteration])
