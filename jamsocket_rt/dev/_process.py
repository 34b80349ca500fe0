"""One session backend as a local process: its spawn, its status walk and its end.

POSIX only: every backend runs in its own session (process group), so that terminating it
reaches whatever it started (a shell command's children included). The groups of backends still
alive when the interpreter exits are killed then, should the dev server never be closed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from .._models import (
    BackendState,
    BackendStatus,
    SpawnOptions,
    TerminationKind,
    TerminationReason,
    status_rank,
)
from ._guard import GroupGuard
from ._output import LinePump, pump_lines
from ._ports import group_listens_on

__all__ = ["Backend", "LaunchConfig", "as_command"]

_log = logging.getLogger("jamsocket_rt.dev")

_READY_RANK = status_rank(BackendStatus.READY)
_TERMINATING_RANK = status_rank(BackendStatus.TERMINATING)
# How often the port of a starting backend is tried, at first and at most.
_POLL_FIRST = 0.02
_POLL_MAX = 0.25
# The idle and lifetime limits are checked at least this often.
_LIMITS_RECHECK = 0.5
# How long output may keep flowing from a group's leftovers once the backend has ended.
_OUTPUT_DRAIN_TIMEOUT = 1.0

# Process groups of live backends, killed at interpreter exit should close() never run.
_LIVE_GROUPS: set[int] = set()
#: Kills the groups of _LIVE_GROUPS if this process dies without running atexit (SIGKILL).
_GUARD = GroupGuard()


def _kill_live_groups() -> None:
    for pgid in list(_LIVE_GROUPS):
        _signal_group(pgid, signal.SIGKILL)


atexit.register(_kill_live_groups)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LaunchConfig:
    """How every backend of a dev server is started and stopped.

    Attributes:
        command: a shell command line (run by ``/bin/sh -c``) or an argv list.
        env: the base environment of the backend processes (None: this process's own).
        cwd: their working directory (None: this process's own).
        startup_timeout: seconds a backend has to accept connections on its port.
        terminate_grace: seconds between SIGTERM and SIGKILL of a soft terminate.
        output: where backend output lines go (None: ``sys.stderr`` at spawn time).
        quiet: discard backend output instead.
        upstream_host: the address the backends listen on (they are told only ``PORT``).
        token_lifetime: seconds a token works after its connect (None: until its backend ends).
    """

    command: str | tuple[str, ...]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    startup_timeout: float = 30.0
    terminate_grace: float = 5.0
    output: TextIO | None = None
    quiet: bool = False
    upstream_host: str = "127.0.0.1"
    token_lifetime: float | None = None


def as_command(backend: str | Sequence[str]) -> str | tuple[str, ...]:
    """Validates a backend command: a non-empty shell string or a non-empty argv list.

    Raises:
        ValueError: the command is empty.
        TypeError: it is neither a string nor a sequence of strings.
    """
    if isinstance(backend, str):
        if not backend.strip():
            raise ValueError("the backend command is empty")
        return backend
    argv = tuple(backend)
    if not argv:
        raise ValueError("the backend command is empty")
    if not all(isinstance(arg, str) for arg in argv):
        raise TypeError("the backend command must be a string or a list of strings")
    return argv


class Backend:
    """One session backend: a local process and its status history.

    The status walks scheduled, loading, starting, waiting, then ready once the process accepts
    TCP connections on its ``PORT``; it ends with terminated, preceded by terminating (soft) or
    hard-terminating when something asked it to stop. Limits of the spawn options map to
    termination reasons as follows: ``max_idle_seconds`` without an open proxied connection is
    ``swept``; ``lifetime_limit_seconds`` (counted from the spawn) is ``keyexpired``, the reason
    Plane gives when a backend outlives its lease; a port not opened within the startup timeout
    is ``startuptimeout`` (a hard kill). A process that exits by itself goes straight to
    terminated, with ``exit_error`` telling whether its exit code was non-zero.
    """

    def __init__(
        self,
        backend_id: str,
        port: int,
        config: LaunchConfig,
        *,
        key: str | None = None,
        spawn: SpawnOptions | None = None,
    ) -> None:
        self.id = backend_id
        self.port = port
        self.key = key
        self._config = config
        self._spawn = spawn or SpawnOptions()
        self._history: list[BackendState] = []
        self._changed = asyncio.Event()
        self._termination: tuple[TerminationReason, TerminationKind] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._grace_kill: asyncio.TimerHandle | None = None
        self._created = time.monotonic()
        self._open_connections = 0
        self._idle_since = self._created
        self._publish(BackendStatus.SCHEDULED)
        self.task = asyncio.create_task(self._run(), name=f"jamsocket-dev-backend-{backend_id}")

    # -- status ------------------------------------------------------------------------------

    @property
    def state(self) -> BackendState:
        """The latest status."""
        return self._history[-1]

    @property
    def status(self) -> BackendStatus:
        status = self.state.status
        assert isinstance(status, BackendStatus)  # we only ever publish known statuses
        return status

    @property
    def is_live(self) -> bool:
        """Neither terminating nor terminated: new connections and keys may use it."""
        return status_rank(self.status) < _TERMINATING_RANK

    @property
    def ended(self) -> bool:
        return self.status is BackendStatus.TERMINATED

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id), once spawned."""
        return self._process.pid if self._process is not None else None

    async def states(self) -> AsyncIterator[BackendState]:
        """Every status from the first, then each new one, ending after ``terminated``."""
        index = 0
        while True:
            while index < len(self._history):
                state = self._history[index]
                index += 1
                yield state
                if state.is_terminated:
                    return
            await self._changed.wait()

    async def wait_ready(self) -> bool:
        """Waits until ready (True) or past it without having been ready (False)."""
        while True:
            rank = status_rank(self.status)
            if rank >= _READY_RANK:
                return self.status is BackendStatus.READY
            await self._changed.wait()

    def _publish(self, status: BackendStatus, **details: Any) -> None:
        self._history.append(BackendState(status=status, time=_now(), **details))
        # Wake every waiter, then give later waiters a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    # -- proxied connections (the idle sweep) -------------------------------------------------

    def connection_opened(self) -> None:
        self._open_connections += 1

    def connection_closed(self) -> None:
        self._open_connections -= 1
        if self._open_connections == 0:
            self._idle_since = time.monotonic()

    # -- termination -------------------------------------------------------------------------

    def terminate(
        self, *, hard: bool = False, reason: TerminationReason = TerminationReason.EXTERNAL
    ) -> None:
        """Asks the backend to stop; returns at once (the status stream tells the end).

        Soft: ``terminating``, SIGTERM to the process group, SIGKILL after the grace period.
        Hard: ``hard-terminating``, SIGKILL. A hard request escalates a soft one in progress
        (keeping its reason); anything else on a terminating backend is a no-op.
        """
        if self.ended:
            return
        if self._termination is not None:
            first_reason, kind = self._termination
            if kind is TerminationKind.HARD or not hard:
                return
            reason = first_reason
        kind = TerminationKind.HARD if hard else TerminationKind.SOFT
        self._termination = (reason, kind)
        status = BackendStatus.HARD_TERMINATING if hard else BackendStatus.TERMINATING
        self._publish(status, termination_reason=reason)
        _log.info("backend %s: %s (%s)", self.id, status.value, reason.value)
        self._signal_process()

    def _signal_process(self) -> None:
        process = self._process
        if process is None or process.returncode is not None or self._termination is None:
            return
        if self._termination[1] is TerminationKind.HARD:
            _signal_group(process.pid, signal.SIGKILL)
            return
        _signal_group(process.pid, signal.SIGTERM)
        if self._grace_kill is None:
            self._grace_kill = asyncio.get_running_loop().call_later(
                self._config.terminate_grace, _signal_group, process.pid, signal.SIGKILL
            )

    # -- lifecycle ---------------------------------------------------------------------------

    async def _run(self) -> None:
        exit_code: int | None = None
        limits: asyncio.Task[None] | None = None
        output: asyncio.Task[None] | None = None
        try:
            self._publish(BackendStatus.LOADING)
            process = await self._start_process()
            if process is None:
                return
            self._process = process
            _LIVE_GROUPS.add(process.pid)
            _GUARD.add(process.pid)
            assert process.stdout is not None
            output = asyncio.create_task(pump_lines(process.stdout, self._line_pump()))
            self._publish(BackendStatus.STARTING)
            self._signal_process()  # a terminate that came while spawning
            limits = asyncio.create_task(self._enforce_limits())
            self._publish(BackendStatus.WAITING)
            if await self._wait_for_port(process):
                self._idle_since = time.monotonic()
                self._publish(BackendStatus.READY)
                _log.info("backend %s: ready on port %d", self.id, self.port)
            exit_code = await process.wait()
        except Exception:  # noqa: BLE001 - a bug here must still end the backend
            _log.exception("backend %s: internal error of the dev server", self.id)
            self._termination = self._termination or (
                TerminationReason.INTERNAL_ERROR,
                TerminationKind.HARD,
            )
        finally:
            await self._finish(exit_code, limits, output)

    async def _start_process(self) -> asyncio.subprocess.Process | None:
        env = dict(os.environ if self._config.env is None else self._config.env)
        # Output is relayed line by line: a buffered Python backend would show nothing.
        env.setdefault("PYTHONUNBUFFERED", "1")
        executable = self._spawn.executable
        if executable is not None and executable.env:
            env.update(executable.env)
        env.update(PORT=str(self.port), SESSION_BACKEND_ID=self.id, JAMSOCKET_BACKEND_ID=self.id)
        options: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.STDOUT,
            "env": env,
            "cwd": self._config.cwd,
            "start_new_session": True,
        }
        command = self._config.command
        try:
            if isinstance(command, str):
                return await asyncio.create_subprocess_shell(command, **options)
            return await asyncio.create_subprocess_exec(*command, **options)
        except OSError as exc:
            _log.error("backend %s: could not start %r: %s", self.id, command, exc)
            return None

    def _line_pump(self) -> LinePump:
        output = None if self._config.quiet else (self._config.output or sys.stderr)
        return LinePump(f"[{self.id}] ", output)

    async def _wait_for_port(self, process: asyncio.subprocess.Process) -> bool:
        """True once the port accepts connections; False if the process ends or must stop."""
        deadline = time.monotonic() + self._config.startup_timeout
        delay = _POLL_FIRST
        while process.returncode is None and self._termination is None:
            # Another program may have taken the port between its pick and the backend's bind:
            # then it is not the backend accepting (where /proc can tell).
            accepting = await _accepts_connections(self._config.upstream_host, self.port)
            if accepting and group_listens_on(process.pid, self.port) is not False:
                return True
            if time.monotonic() >= deadline:
                _log.warning(
                    "backend %s: no connection accepted on port %d within %g s",
                    self.id,
                    self.port,
                    self._config.startup_timeout,
                )
                self.terminate(hard=True, reason=TerminationReason.STARTUP_TIMEOUT)
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
        return False

    async def _enforce_limits(self) -> None:
        lifetime = self._spawn.lifetime_limit_seconds
        max_idle = self._spawn.max_idle_seconds
        if lifetime is None and max_idle is None:
            return
        while self._termination is None:
            now = time.monotonic()
            wake = now + _LIMITS_RECHECK
            if lifetime is not None:
                end_of_life = self._created + lifetime
                if now >= end_of_life:
                    self.terminate(reason=TerminationReason.KEY_EXPIRED)
                    return
                wake = min(wake, end_of_life)
            if (
                max_idle is not None
                and self.status is BackendStatus.READY
                and self._open_connections == 0
            ):
                idle_end = self._idle_since + max_idle
                if now >= idle_end:
                    self.terminate(reason=TerminationReason.SWEPT)
                    return
                wake = min(wake, idle_end)
            await asyncio.sleep(wake - now)

    async def _finish(
        self,
        exit_code: int | None,
        limits: asyncio.Task[None] | None,
        output: asyncio.Task[None] | None,
    ) -> None:
        if limits is not None:
            limits.cancel()
        if self._grace_kill is not None:
            self._grace_kill.cancel()
        process = self._process
        if process is not None:
            # The leader is gone (or we are being cancelled): leave nothing of its group behind.
            _signal_group(process.pid, signal.SIGKILL)
            _LIVE_GROUPS.discard(process.pid)
            _GUARD.discard(process.pid)
        if output is not None:
            # Drained first, so that a crash's last words come before its "terminated".
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(output, _OUTPUT_DRAIN_TIMEOUT)
        if self._termination is not None:
            reason, kind = self._termination
            self._publish(
                BackendStatus.TERMINATED, termination_reason=reason, termination_kind=kind
            )
            _log.info("backend %s: terminated (%s, %s)", self.id, reason.value, kind.value)
        else:
            self._publish(BackendStatus.TERMINATED, exit_error=exit_code != 0)
            _log.info("backend %s: exited with code %s", self.id, exit_code)


async def _accepts_connections(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
