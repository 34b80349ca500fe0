"""The platform half of a Session: the backend's status, readiness and token renewal.

A Session follows its backend's status (one shared watcher per backend and loop, see
:mod:`jamsocket_rt.asyncio.status`), waits for it to be ready before connecting, and learns
from it that the backend ended. When the proxy refuses the token (410), the status says whether
the backend ended, is ending, or the token just expired (then a ``connect`` callable renews it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._errors import BackendTerminated, ConnectRefused, JamsocketError, ReadyTimeout, TokenExpired
from .._models import BackendState, ConnectResponse
from ..protocol.lifecycle import Input, State
from ..protocol.options import SessionOptions
from ..protocol.session import StatusTracker
from . import status as status_hub
from ._util import Flag
from ._util import timeout as _timeout

logger = logging.getLogger("jamsocket_rt.session")

ResponseLike = ConnectResponse | Mapping[str, Any] | str | bytes
ConnectCallable = Callable[[], Awaitable[ConnectResponse]]

#: The input an action's outcome feeds back to the lifecycle, with its error (None: nothing).
Next = tuple[Input, BaseException | None] | None

#: Seconds a reconnect refused with 410 waits for the ``terminated`` of a terminating backend.
ENDING_WAIT = 5.0


def coerce_response(response: ResponseLike) -> ConnectResponse:
    """A ConnectResponse from itself, a dict, or JSON text.

    Raises:
        InvalidResponse: the data does not fit (every bad field is named).
    """
    if isinstance(response, ConnectResponse):
        return response
    if isinstance(response, (str, bytes, bytearray)):
        return ConnectResponse.from_json(response)
    return ConnectResponse.from_dict(response)


class BackendWatch:
    """The Session's view of its backend (a base of :class:`~jamsocket_rt.Session`).

    The Session provides ``_fire``, ``_hook``, ``_feed``, ``_check_usable`` and
    ``_loop_or_raise``.
    """

    _options: SessionOptions
    _fire: Callable[..., None]
    _hook: Callable[..., Callable[[], None]]
    _feed: Callable[..., None]
    _check_usable: Callable[[], None]
    _loop_or_raise: Callable[[], asyncio.AbstractEventLoop]
    _state: State

    def _init_watch(
        self, response: ConnectResponse | None, connect: ConnectCallable | None
    ) -> None:
        self._response = response
        self._connect_fn = connect
        self._tracker = StatusTracker()
        self._subscription: status_hub.Subscription | None = None
        self._state_changed: Flag | None = None
        self._status_error: JamsocketError | None = None

    # ------------------------------------------------------------------ state

    @property
    def response(self) -> ConnectResponse | None:
        """The ConnectResponse in use (renewed after a token expiry)."""
        return self._response

    @property
    def backend_id(self) -> str | None:
        return self._response.backend_id if self._response is not None else None

    @property
    def status(self) -> BackendState | None:
        """The latest BackendState seen."""
        return self._tracker.latest

    @property
    def ready(self) -> bool:
        """True once the backend has said it is ready (stays True until it terminates)."""
        return self._tracker.ready and self._tracker.terminal is None

    @property
    def terminated(self) -> BackendState | None:
        """The terminal BackendState, once the backend has terminated; else None."""
        return self._tracker.terminal

    async def _fetch_response(self) -> ConnectResponse:
        assert self._connect_fn is not None
        response = await self._connect_fn()
        return coerce_response(response)

    def _watch(self, response: ConnectResponse) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._tracker = StatusTracker()
        self._status_error = None
        self._subscription = status_hub.subscribe(
            response,
            self._on_state,
            ssl=self._options.ssl,
            proxy=self._options.proxy,
            on_error=self._on_status_error,
        )

    def _on_state(self, state: BackendState) -> None:
        if not self._tracker.update(state):
            return
        assert self._state_changed is not None
        self._state_changed.set()
        self._fire("status", state)
        if state.is_ready:
            self._fire("ready")
        elif state.is_terminated:
            self._feed(Input.TERMINATED)

    def _on_status_error(self, error: JamsocketError) -> None:
        """The status can no longer be followed (a bad stream, a certificate that fails)."""
        self._status_error = error
        assert self._state_changed is not None
        self._state_changed.set()  # a wait for ready ends with this error
        if self._tracker.ready:
            # The connection goes on; termination is then heard from the proxy (a 410 on
            # reconnect leads to a probe of the status), not from the stream.
            self._fire("error", error)

    def _check_status_error(self) -> None:
        if self._status_error is not None and not self._tracker.ready:
            raise self._status_error

    async def _wait_ready(self) -> None:
        assert self._state_changed is not None
        if self._tracker.ready and self._tracker.terminal is None:
            # Known at once (the status watcher replays what it heard): no timer to arm, which
            # a thousand sessions opened together on one backend would all pay for.
            return
        try:
            async with _timeout(self._options.ready_timeout):
                while not self._tracker.ready:
                    if self._tracker.terminal is not None:
                        raise BackendTerminated(self._tracker.terminal)
                    self._check_status_error()
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            last = self.status.status if self.status is not None else "none yet"
            problem = self._subscription.last_problem if self._subscription else None
            raise ReadyTimeout(
                f"backend {self.backend_id} was not ready after {self._options.ready_timeout} s "
                f"(last status: {last}"
                + (f"; the status could not be read: {problem}" if problem else "")
                + ")"
            ) from None
        if self._tracker.terminal is not None:
            raise BackendTerminated(self._tracker.terminal)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the backend is ready.

        Raises:
            BackendTerminated: it terminated first.
            TimeoutError: ``timeout`` elapsed.
        """
        self._check_usable()
        try:
            async with _timeout(timeout):
                while not self.ready:
                    if self._tracker.terminal is not None:
                        raise BackendTerminated(self._tracker.terminal)
                    self._check_status_error()
                    assert self._state_changed is not None
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            raise TimeoutError(f"backend not ready after {timeout} s") from None

    async def _await_end(self) -> None:
        """Wait (a little) for the ``terminated`` of a backend that is terminating.

        The proxy refuses a backend as soon as it starts terminating; its end follows within
        its grace period. The stream may be resuming with backoff: read the status meanwhile.
        """
        assert self._state_changed is not None
        assert self._subscription is not None
        loop = self._loop_or_raise()
        deadline = loop.time() + ENDING_WAIT
        while self._tracker.terminal is None and loop.time() < deadline:
            self._state_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with _timeout(min(1.0, max(0.0, deadline - loop.time()))):
                    await self._state_changed.wait()
            if self._tracker.terminal is None:
                await self._subscription.probe()

    async def _renew(self) -> None:
        old = self._response
        self._response = await self._fetch_response()
        logger.info("token renewed for backend %s", self._response.backend_id)
        if old is None or self._response.backend_id != old.backend_id:
            self._watch(self._response)
            await self._wait_ready()

    async def _probe_status(self, error: BaseException | None) -> Next:
        """After a 410: does the status say the backend ended or is ending?"""
        # A 410 says "unknown, expired or ended": if the backend has ended, the status says so
        # (perhaps before the stream does); that is the better answer.
        if self._tracker.terminal is None and self._subscription is not None:
            await self._subscription.probe()
            if self._tracker.ending:
                await self._await_end()
        if self._tracker.terminal is not None:
            return Input.STATUS_CHECKED, BackendTerminated(self._tracker.terminal)
        if self._tracker.ending:
            return Input.STATUS_CHECKED, BackendTerminated(
                self._tracker.latest,
                "the session backend is terminating: the proxy no longer accepts it",
            )
        return Input.STATUS_CHECKED, error

    async def _renew_token(self) -> Next:
        if self._state is State.CONNECTING:
            await self._renew()  # the first connection: what goes wrong is raised
            return Input.RENEWED, None
        try:
            await self._renew()
        except (TokenExpired, ConnectRefused) as exc:
            return Input.REFUSED, exc
        except (OSError, TimeoutError) as exc:
            return Input.UNREACHABLE, exc
        return Input.RENEWED, None

    # ------------------------------------------------------------------ hooks

    def on_ready(self, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call ``callback()`` when the backend is ready (at once if it already is)."""
        return self._hook("ready", callback, replay=() if self.ready else None)

    def on_status(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        """Call ``callback(state)`` for every new BackendState."""
        return self._hook("status", callback)

    def on_terminated(self, callback: Callable[[BackendState], Any]) -> Callable[[], None]:
        """Call ``callback(state)`` when the backend terminates (at once if it has)."""
        terminal = self._tracker.terminal
        return self._hook("terminated", callback, replay=(terminal,) if terminal else None)
