"""A worker of the load runner: one event loop's share of the sessions, tick by tick.

A :class:`Worker` starts its sessions at the ramp-up rate, waits until every one of them is
ready or failed (the load window opens then: a backend's spawn time is not part of
``--duration``), runs each session's iterations on its absolute schedule, and hands a
:class:`~jamsocket_rt.load.stats.Snapshot` to its ``emit`` callback every tick. It runs in the
load process itself (one worker) or in each worker process (``python -m
jamsocket_rt.load._worker``); the coordinator, :func:`~.runner.run_load`, merges what they
emit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import random
import time
from collections.abc import Awaitable, Callable

from .. import platform as _api
from .._models import BackendState, BackendStatus, ConnectResponse
from ..asyncio.session import Session
from ..protocol.api import DEFAULT_API_URL
from . import _resources
from ._causes import NOT_READY
from ._heap import HeapPolicy
from .config import DevTarget, FixedTarget, JamsocketTarget, LoadConfig, PlaneTarget
from .pacing import Pacer, even_phase
from .scenarios import (
    SESSION_ENDING,
    LoadedScenario,
    VirtualUser,
    builtin_scenario,
    load_scenario,
)
from .stats import Recorder, Snapshot

__all__ = ["PlatformClient", "Worker", "make_client", "resolve_scenario"]

#: How often the event-loop lag probe fires, in seconds.
LAG_PROBE_INTERVAL = 0.025
#: After the end of the load, how long iterations in flight may take before they are cancelled.
STOP_GRACE = 2.0

_clock = time.perf_counter


def resolve_scenario(config: LoadConfig) -> LoadedScenario:
    """The built-in or user scenario ``config.scenario`` names.

    Raises:
        ValueError: it cannot be loaded (the message names ``--scenario``).
    """
    path = config.scenario_path
    if path is None:
        return builtin_scenario(config.scenario)
    return load_scenario(path, config.scenario_function)


PlatformClient = _api.Jamsocket | _api.Plane


def make_client(config: LoadConfig, api_url: str | None) -> PlatformClient | None:
    """The platform client of the target (None for a fixed ConnectResponse).

    Raises:
        ConfigurationError: the target's settings (or the JAMSOCKET_* variables) are wrong.
    """
    target, proxy = config.target, config.proxy
    # One client per worker serves thousands of connects: no per-host connection limit.
    if isinstance(target, DevTarget):
        assert api_url is not None
        return _api.Jamsocket.dev_server(api_url, proxy=proxy)
    if isinstance(target, JamsocketTarget):
        if target.from_env:
            return _api.Jamsocket.from_env(proxy=proxy)
        return _api.Jamsocket(
            account=target.account or "",
            token=target.token or "",
            service=target.service or "",
            api_url=target.api_url or DEFAULT_API_URL,
            proxy=proxy,
        )
    if isinstance(target, PlaneTarget):
        return _api.Plane(
            target.controller_url, image=target.image, token=target.token, proxy=proxy
        )
    return None


class _AssumedReadySession(Session):
    """A Session that takes its backend as ready without reading ``status_url``.

    For ``--assume-ready``: a plain Socket.IO server has no status service, and waiting for
    one would only end in a ReadyTimeout. Instead of subscribing to the status, the backend is
    declared ready at once; the ready hook fires as usual and the connection opens.

    It overrides ``BackendWatch._watch``, the one place a Session subscribes to its status
    (``Session.connect`` then finds the backend ready and opens the connection): if that hook
    changes, this follows (``tests/test_load_reports.py`` runs it against python-socketio).
    """

    def _watch(self, response: ConnectResponse) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        self._on_state(BackendState(status=BackendStatus.READY, time=now))


class Worker:
    """Drives one share of the sessions on the running event loop.

    Args:
        config: the run.
        scenario: what each iteration does.
        worker: this worker's number; it runs sessions ``worker``, ``worker + processes``...
        anchor: the run's start on the ``time.monotonic()`` clock, shared by every worker.
        api_url: the dev server's API, for a dev target.
        emit: receives each tick's snapshot (the last one has ``final`` set).
    """

    def __init__(
        self,
        config: LoadConfig,
        scenario: LoadedScenario,
        *,
        worker: int,
        anchor: float,
        api_url: str | None,
        emit: Callable[[Snapshot], None],
    ) -> None:
        self.config = config
        self.session_options = config.session_options()
        self.scenario = scenario
        self.worker = worker
        self.anchor = anchor
        self.api_url = api_url
        self.emit = emit
        self.recorder = Recorder()
        self.indices = range(worker, config.sessions, config.processes)
        # Iterations begin once every session has been started and is ready or failed: the
        # connect storm and the backends' spawn time stay out of the measured load, and the
        # phases start evenly spread. ``_open_window`` sets the actual times.
        self.load_start = anchor + config.ramp_seconds
        self.stop_at = math.inf
        self._window_open = asyncio.Event()
        self._unsettled = 0
        self._all_settled = asyncio.Event()
        # Sessions close only once no session is still calling: closing thousands of sessions
        # takes the loop for a while, which would be measured as the latency of the last
        # calls. ``_lanes_done`` is set when no session is connecting or calling any more,
        # ``_closing_time`` when sessions may close.
        self._driving = 0
        self._lanes_done = asyncio.Event()
        self._closing_time = asyncio.Event()
        self._parked: set[asyncio.Task[None]] = set()
        self._session_cls = _AssumedReadySession if config.assume_ready else Session
        self._payload = "x" * config.payload_size
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawned: list[str] = []
        self._client: PlatformClient | None = None
        self._fixed: ConnectResponse | None = None
        self._rss_baseline = 0
        self._cpu_baseline = 0.0
        self._heap = HeapPolicy()

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        """Runs every session of this worker to the end, then emits the final snapshot."""
        loop = asyncio.get_running_loop()
        self._rss_baseline = _resources.current_rss()
        self._cpu_baseline = _resources.cpu_seconds()
        target = self.config.target
        if isinstance(target, FixedTarget):
            self._fixed = ConnectResponse.from_dict(target.response)
        self._client = make_client(self.config, self.api_url)
        ticker = loop.create_task(self._tick(), name="jamsocket_rt load ticker")
        probe = loop.create_task(self._probe_lag(), name="jamsocket_rt load lag probe")
        self._heap.pause(loop.time())
        try:
            await self._launch()
            await self._open_window()
            await self._wait_sessions()
        finally:
            self._closing_time.set()  # (ended early: no session waits for the end)
            for task in (ticker, probe):
                task.cancel()
            for task in (ticker, probe):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._heap.resume()
            await self._cleanup()
            self.emit(self._snapshot(final=True))

    def _tick_number(self) -> int:
        elapsed = asyncio.get_running_loop().time() - self.anchor
        return max(0, math.floor(elapsed / self.config.interval))

    def _snapshot(self, *, final: bool = False, tick: int | None = None) -> Snapshot:
        return self.recorder.snapshot(
            self._tick_number() if tick is None else tick,
            # From the worker's start: the interpreter's start-up and imports are not load.
            cpu_seconds=_resources.cpu_seconds() - self._cpu_baseline,
            rss_baseline=self._rss_baseline,
            rss_peak=_resources.peak_rss(),
            window_start=(self.load_start - self.anchor) if self._window_open.is_set() else None,
            final=final,
        )

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        tick = self._tick_number()
        while True:
            # Absolute times: a slow tick does not push the next ones back.
            await asyncio.sleep(max(0.0, self.anchor + (tick + 1) * interval - loop.time()))
            self._heap.tick(loop.time(), had_errors=self.recorder.has_errors)
            self.emit(self._snapshot(tick=tick))
            tick += 1

    async def _probe_lag(self) -> None:
        """Measures how late the loop runs timers, during the load window only (the connect
        and close storms around it are not the load)."""
        loop = asyncio.get_running_loop()
        record = self.recorder.record_loop_lag
        window_open = self._window_open
        while True:
            due = loop.time() + LAG_PROBE_INTERVAL
            await asyncio.sleep(LAG_PROBE_INTERVAL)
            now = loop.time()
            if window_open.is_set() and now <= self.stop_at:
                record(now - due)

    async def _launch(self) -> None:
        loop = asyncio.get_running_loop()
        ramp = self.config.ramp_up
        for index in self.indices:
            if ramp > 0:
                delay = self.anchor + index / ramp - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            task = loop.create_task(self._session(index))
            self._unsettled += 1
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _settle(self) -> None:
        """One session is ready or failed (called once per session)."""
        self._unsettled -= 1
        if self._unsettled <= 0:
            self._all_settled.set()
        self._check_lanes_done()

    def _check_lanes_done(self) -> None:
        if self._unsettled <= 0 and self._driving <= 0:
            self._lanes_done.set()

    async def _open_window(self) -> None:
        """Opens the load window once every session is ready or failed, after the ramp-up.

        A session that takes longer than ``ready_timeout`` past the ramp-up does not hold the
        others back: the window opens without it (it joins at its next slot if it gets ready).
        """
        loop = asyncio.get_running_loop()
        ramp_end = self.anchor + self.config.ramp_seconds
        if self._unsettled > 0:
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._all_settled.wait(),
                    timeout=max(0.0, ramp_end - loop.time()) + self.config.ready_timeout,
                )
        if ramp_end > loop.time():
            await asyncio.sleep(ramp_end - loop.time())
        self._heap.freeze(loop.time())  # before the window: its pause is not measured
        self.load_start = loop.time()
        if self.config.duration is not None:
            self.stop_at = self.load_start + self.config.duration
        self._window_open.set()

    async def _wait_sessions(self) -> None:
        """Waits for the load to end, then lets every session close.

        Every session calls until the end of the load; then those still in a call past the
        grace period (and those still connecting) are cut, and the others close together.
        """
        loop = asyncio.get_running_loop()
        if not self._tasks:
            return
        timeout = None
        if self.stop_at != math.inf:
            grace = min(self.config.call_timeout, STOP_GRACE)
            timeout = max(0.0, self.stop_at + grace - loop.time())
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(self._lanes_done.wait(), timeout)
        self._closing_time.set()
        # Stuck in a call past the end, or still connecting: cut them, each closes its
        # session on the way out.
        for task in self._tasks - self._parked:
            task.cancel()
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _cleanup(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self.config.terminate_backends:
            for backend_id in self._spawned:
                try:
                    await client.terminate(backend_id)
                except Exception as exc:  # noqa: BLE001 - count it, go on with the others
                    self.recorder.record_error("terminate", exc)
        await client.aclose()

    # -- one session ----------------------------------------------------------------------

    async def _connect_response(self, index: int) -> ConnectResponse | None:
        recorder = self.recorder
        if self._fixed is not None:
            return self._fixed
        assert self._client is not None
        key = self.config.key_for(index)
        started = _clock()
        try:
            response = await (
                self._client.connect(key=key) if key is not None else self._client.connect()
            )
        except asyncio.CancelledError:
            recorder.record_error("connect_api", NOT_READY)  # cut at the end of the run
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
            recorder.record_error("connect_api", exc)
            return None
        recorder.record_phase("connect_api", _clock() - started)
        if response.spawned:
            self._spawned.append(response.backend_id)
        return response

    async def _session(self, index: int) -> None:
        counts = self.recorder.sessions
        counts.started += 1
        settled = False

        def settle(ready: bool) -> None:
            nonlocal settled
            if not settled:
                settled = True
                if ready:
                    counts.ready += 1
                else:
                    counts.failed += 1
                self._settle()

        try:
            await self._run_session(index, settle)
        finally:
            settle(False)  # no-op once ready; otherwise it failed (an error is recorded)

    async def _run_session(self, index: int, settle: Callable[[bool], None]) -> None:
        recorder = self.recorder
        counts = recorder.sessions
        response = await self._connect_response(index)
        if response is None:
            return
        got_response = _clock()
        session = self._session_cls.from_options(response, options=self.session_options)
        ready_at: list[float] = []
        # The ready hook fires inside connect(): it splits the wait for the backend from the
        # Socket.IO handshake that follows. (The other hooks are the worker's own methods: a
        # closure per session would cost ten thousand sessions 4 MiB.)
        session.on_ready(lambda: ready_at.append(_clock()))
        session.on_disconnect(self._count_disconnect)
        session.on_reconnect(self._count_reconnect)
        try:
            try:
                await session.connect()
            except asyncio.CancelledError:
                # Cut at the end of the run while still connecting: a failed session.
                recorder.record_error("socket_connect" if ready_at else "ready", NOT_READY)
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
                recorder.record_error("socket_connect" if ready_at else "ready", exc)
                return
            connected = _clock()
            ready = ready_at[0] if ready_at else connected
            recorder.record_phase("ready", ready - got_response)
            recorder.record_phase("socket_connect", connected - ready)
            self._driving += 1
            settle(True)
            try:
                # The lanes are awaited here, not in a coroutine of their own: one frame less
                # per session for as long as the load lasts.
                user = await self._prepare(session, index)
                if user is not None:
                    await self._lanes(session, user)
            finally:
                counts.finished += 1
                self._driving -= 1
                self._check_lanes_done()
            task = asyncio.current_task()
            assert task is not None
            self._parked.add(task)
            try:
                await self._closing_time.wait()
            finally:
                self._parked.discard(task)
        finally:
            await session.close()

    def _count_disconnect(self, error: BaseException | None) -> None:
        if getattr(error, "reason", None) != "io client disconnect":  # (not our close())
            self.recorder.sessions.disconnects += 1

    def _count_reconnect(self) -> None:
        self.recorder.sessions.reconnects += 1

    async def _prepare(self, session: Session, index: int) -> VirtualUser | None:
        """The session's virtual user, once the scenario's setup has run (None: it failed)."""
        user = VirtualUser(
            session=session,
            index=index,
            key=self.config.key_for(index),
            payload=self._payload,
            call_timeout=self.config.call_timeout,
            recorder=self.recorder,
        )
        if self.scenario.setup is not None:
            try:
                await self.scenario.setup(session, user)
            except Exception as exc:  # noqa: BLE001 - user code: counted, by kind
                if not user.already_recorded(exc):
                    self.recorder.record_error("setup", exc)
                return None
        return user

    def _lanes(self, session: Session, user: VirtualUser) -> Awaitable[object]:
        """The session's ``in_flight`` lanes, to await."""
        lanes = self.config.in_flight
        if lanes == 1:
            return self._lane(session, user, 0)
        return asyncio.gather(*(self._lane(session, user, lane) for lane in range(lanes)))

    async def _lane(self, session: Session, user: VirtualUser, lane: int) -> None:
        """One of a session's ``in_flight`` concurrent sequences of iterations."""
        config = self.config
        loop = asyncio.get_running_loop()
        recorder = self.recorder
        iteration = self.scenario.iteration
        await self._window_open.wait()
        pacer = None
        if config.rate > 0:
            lanes = config.in_flight
            pacer = Pacer(
                period=lanes / config.rate,
                anchor=self.load_start,
                phase=even_phase(user.index * lanes + lane, config.sessions * lanes),
            )
        think_low, think_high = config.think_time
        limit = config.iterations
        while True:
            now = loop.time()
            if now >= self.stop_at or (limit is not None and user.iteration >= limit):
                return
            if pacer is not None:
                late, missed = pacer.late, pacer.missed
                start = pacer.next_start(now)
                recorder.late += pacer.late - late
                recorder.missed += pacer.missed - missed
                if start >= self.stop_at:
                    return
                if start > now:
                    await asyncio.sleep(start - now)
            user.iteration += 1
            try:
                await iteration(session, user)
            except SESSION_ENDING as exc:
                if not user.already_recorded(exc):
                    recorder.record_error("session", exc)
                return
            except Exception as exc:  # noqa: BLE001 - user code: counted, the session goes on
                if not user.already_recorded(exc):
                    recorder.record_error(self.scenario.name, exc)
            if think_high > 0:
                await asyncio.sleep(random.uniform(think_low, think_high))
