"""Scenarios: what one iteration of a simulated user does with its Session.

A scenario is an async function called once per iteration with the user's live
:class:`~jamsocket_rt.Session` and its :class:`VirtualUser`, which times and records::

    import jamsocket_rt as jrt
    from jamsocket_rt.load import VirtualUser

    async def scenario(session: jrt.Session, user: VirtualUser) -> None:
        await user.call("echo", user.payload)           # timed as "echo"
        with user.measure("ping-pong"):                 # any block, timed by name
            pong = session.wait_for("pong", timeout=user.call_timeout)
            await session.send("ping", user.index)
            await pong

A scenario file may also define ``async def setup(session, user)``, run once per session
before its first iteration (to register listeners, join a room...). The runner paces the
iterations (``--rate``), stops them (``--duration``, ``--iterations``) and counts what they
raise; see ``examples/load_scenario.py``.

The built-in scenarios (``echo``, ``ping``, ``broadcast``) are written the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from attrs import frozen

from .._errors import BackendTerminated, SessionClosed, TokenExpired
from ..asyncio.session import Session
from .stats import Recorder

__all__ = ["LoadedScenario", "Scenario", "VirtualUser", "builtin_scenario", "load_scenario"]

#: One iteration of a user's work.
Scenario = Callable[[Session, "VirtualUser"], Awaitable[None]]

#: Errors after which a session cannot go on: its loop ends.
SESSION_ENDING = (BackendTerminated, SessionClosed, TokenExpired)

_clock = time.perf_counter


class VirtualUser:
    """One simulated user: who it is, and helpers that time and record what it does.

    Attributes:
        session: the user's Session (also the scenario's first argument).
        index: the session's number, 0 to sessions - 1 (unique across worker processes).
        key: the connect key its backend was asked for (None: a new backend of its own).
        iteration: iterations started so far by this user (1 during the first).
        payload: a string of ``--payload-size`` characters, to pad messages with.
        call_timeout: the run's ``--call-timeout`` in seconds.
        state: free room for a scenario's own per-user data.
    """

    __slots__ = (
        "_last_recorded",
        "_recorder",
        "call_timeout",
        "index",
        "iteration",
        "key",
        "payload",
        "session",
        "state",
    )

    def __init__(
        self,
        *,
        session: Session,
        index: int,
        key: str | None,
        payload: str,
        call_timeout: float,
        recorder: Recorder,
    ) -> None:
        self.session = session
        self.index = index
        self.key = key
        self.iteration = 0
        self.payload = payload
        self.call_timeout = call_timeout
        self.state: dict[str, Any] = {}
        self._recorder = recorder
        self._last_recorded: BaseException | None = None

    def record(self, name: str, seconds: float) -> None:
        """Records one latency of the operation ``name``."""
        self._recorder.record(name, seconds)

    def error(self, name: str, error: BaseException | str) -> None:
        """Counts one failure of the operation ``name`` (an exception, or a kind as text)."""
        self._recorder.record_error(name, error)
        if isinstance(error, BaseException):
            self._last_recorded = error

    def already_recorded(self, error: BaseException) -> bool:
        """True if ``error`` was counted by :meth:`error` (or a helper) already."""
        return error is self._last_recorded

    async def call(
        self, event: str, *args: Any, name: str | None = None, timeout: float | None = None
    ) -> Any:
        """``session.call(event, *args)``, timed and recorded as ``name`` (default: ``event``).

        A failure is counted under that name and raised again.

        Args:
            event: the event to call.
            *args: its arguments.
            name: the operation's name in the statistics.
            timeout: seconds to wait (default: ``call_timeout``).

        Returns:
            The acknowledgement (see :meth:`Session.call`).

        Raises:
            Whatever :meth:`Session.call` raises.
        """
        started = _clock()
        try:
            result = await self.session.call(
                event, *args, timeout=self.call_timeout if timeout is None else timeout
            )
        except Exception as exc:
            self.error(name or event, exc)
            raise
        self._recorder.record(name or event, _clock() - started)
        return result

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Times the block as one ``name`` operation; an exception leaving it is counted."""
        started = _clock()
        try:
            yield
        except Exception as exc:
            self.error(name, exc)
            raise
        self._recorder.record(name, _clock() - started)


@frozen
class LoadedScenario:
    """A scenario ready to run.

    Attributes:
        name: the built-in's name or the file's path and function.
        iteration: called once per iteration.
        setup: called once per session before its first iteration, if any.
    """

    name: str
    iteration: Scenario
    setup: Scenario | None = None


# -- built-ins --------------------------------------------------------------------------------


async def _echo(session: Session, user: VirtualUser) -> None:
    await user.call("echo", user.payload)


class _Replies:
    """Matches replies to requests by sequence number, with one timer per wait."""

    __slots__ = ("pending", "seq")

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[None]] = {}
        self.seq = 0

    def expect(self) -> tuple[int, asyncio.Future[None]]:
        self.seq += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.seq] = future
        return self.seq, future

    def arrived(self, seq: object) -> None:
        future = self.pending.pop(seq, None) if isinstance(seq, int) else None
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, seq: int, future: asyncio.Future[None], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, _expire, future, f"no {what} within {timeout} s")
        try:
            await future
        finally:
            timer.cancel()
            self.pending.pop(seq, None)


def _expire(future: asyncio.Future[None], message: str) -> None:
    if not future.done():
        future.set_exception(TimeoutError(message))


async def _ping_setup(session: Session, user: VirtualUser) -> None:
    replies = user.state["replies"] = _Replies()

    def on_pong(message: Any = None, *_: Any) -> None:
        if isinstance(message, dict):
            replies.arrived(message.get("seq"))

    session.on("pong", on_pong)


async def _ping(session: Session, user: VirtualUser) -> None:
    replies: _Replies = user.state["replies"]
    seq, future = replies.expect()
    with user.measure("ping"):
        await session.send("ping", {"seq": seq, "pad": user.payload})
        await replies.wait(seq, future, user.call_timeout, "pong")


async def _broadcast_setup(session: Session, user: VirtualUser) -> None:
    replies = user.state["replies"] = _Replies()
    record = user.record
    me = user.index

    def on_broadcast(message: Any = None, *_: Any) -> None:
        # Every listener times every copy: the fan-out's receive latency, sender included.
        if not isinstance(message, dict):
            return
        sent = message.get("t")
        if isinstance(sent, float):
            record("broadcast", _clock() - sent)
        if message.get("from") == me:
            replies.arrived(message.get("seq"))

    session.on("broadcast", on_broadcast)


async def _broadcast(session: Session, user: VirtualUser) -> None:
    replies: _Replies = user.state["replies"]
    seq, future = replies.expect()
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across the worker processes.
    message = {"t": _clock(), "from": user.index, "seq": seq, "pad": user.payload}
    try:
        await session.send("broadcast", message)
        await replies.wait(seq, future, user.call_timeout, "broadcast copy")
    except Exception as exc:
        user.error("broadcast", exc)
        raise


_BUILTINS: dict[str, LoadedScenario] = {
    "echo": LoadedScenario("echo", _echo),
    "ping": LoadedScenario("ping", _ping, _ping_setup),
    "broadcast": LoadedScenario("broadcast", _broadcast, _broadcast_setup),
}


def builtin_scenario(name: str) -> LoadedScenario:
    """The built-in scenario ``name`` (see :data:`~jamsocket_rt.load.config.BUILTIN_SCENARIOS`).

    Raises:
        ValueError: there is no such built-in (the message names ``--scenario``).
    """
    try:
        return _BUILTINS[name]
    except KeyError:
        raise ValueError(
            f"--scenario: no built-in scenario {name!r} ({', '.join(_BUILTINS)})"
        ) from None


def load_scenario(path: str, function: str = "scenario") -> LoadedScenario:
    """Imports a scenario file and finds its async ``function`` (and ``setup``, if any).

    Raises:
        ValueError: the file is missing, does not import, or lacks an async ``function``
            (the message names ``--scenario``).
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--scenario: no such file {path!r}")
    module_name = f"jamsocket_rt_load_scenario_{abs(hash(str(file.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"--scenario: cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ValueError(f"--scenario: importing {path!r} failed: {exc!r}") from exc
    iteration = getattr(module, function, None)
    if not inspect.iscoroutinefunction(iteration):
        raise ValueError(f"--scenario: {path!r} has no async function {function!r}(session, user)")
    setup = getattr(module, "setup", None)
    if setup is not None and not inspect.iscoroutinefunction(setup):
        raise ValueError(f"--scenario: setup in {path!r} must be an async function")
    return LoadedScenario(f"{path}:{function}", iteration, setup)
