"""The load process's own limits: open files, memory, CPU, the machine's load and CPU."""

from __future__ import annotations

import os
import sys
import time

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

__all__ = [
    "cpu_seconds",
    "current_rss",
    "descriptors_needed",
    "fd_limit_advice",
    "load_average",
    "machine_cpu",
    "machine_cpu_percent",
    "peak_rss",
    "raise_open_file_limit",
]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def descriptors_needed(sessions: int, backends: int) -> int:
    """About how many descriptors one load process needs.

    One socket per session, one status stream per backend, the API's pooled connections, and
    room for the interpreter's own files.
    """
    return sessions + backends + 64


def raise_open_file_limit(wanted: int) -> tuple[int, int]:
    """Raises the soft open-file limit towards ``wanted`` (never above the hard limit).

    Returns:
        (the soft limit now in force, the hard limit).
    """
    if resource is None:  # pragma: no cover
        return wanted, wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    big = 1 << 30
    return (
        big if soft == resource.RLIM_INFINITY else soft,
        big if hard == resource.RLIM_INFINITY else hard,
    )


def fd_limit_advice(soft: int, hard: int, needed: int, sessions: int) -> str:
    """The warning for a load process whose open-file limit is below what it needs.

    Args:
        soft: the limit in force (already raised as far as the hard limit allows).
        hard: the hard limit, which only root can raise.
        needed: the descriptors one load process needs (:func:`descriptors_needed`).
        sessions: the sessions of one load process.

    Returns:
        What stops the run, and the ways around it, in one paragraph.
    """
    room = max(1, soft - (needed - sessions))  # sessions that fit beside the fixed needs
    processes = -(-sessions // room)
    return (
        f"warning: the open-file limit is {soft} (RLIMIT_NOFILE; raised to the hard limit "
        f"{hard}, which only root can raise) but each load process may need about {needed}: "
        "sessions past the limit will fail with EMFILE. Raise the hard limit where the run "
        f"starts (as root: `ulimit -Hn {needed}` in its shell; `nofile` in "
        f"/etc/security/limits.conf; `LimitNOFILE={needed}` for a systemd service; "
        f"`--ulimit nofile={needed}` for a container), or spread the sessions over "
        f"`--processes {processes}` or more (about {room} sessions fit in each)"
    )


def current_rss() -> int:
    """This process's resident memory now, in bytes (the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as file:
            return int(file.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident memory, in bytes."""
    if resource is None:  # pragma: no cover
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def cpu_seconds() -> float:
    """CPU time used by this process (every thread), in seconds."""
    return time.process_time()


def load_average() -> float:
    """The machine's 1-minute load average (0 where unknown)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def machine_cpu() -> tuple[float, float] | None:
    """The whole machine's CPU time so far: (busy, total), in clock ticks of every CPU.

    Read from ``/proc/stat``: it counts the backends and the dev server too, which the load
    process's own CPU time does not. None where it is missing (not Linux).
    """
    try:
        with open("/proc/stat", "rb") as file:
            fields = [float(x) for x in file.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    # guest times are already counted in user and nice.
    total = sum(fields[:8])
    return total - idle, total


def machine_cpu_percent(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """How busy every CPU of the machine was between two :func:`machine_cpu` readings, in %.

    Returns:
        The busy share of all CPUs together (100: every core saturated), None if no time
        passed between the readings.
    """
    total = after[1] - before[1]
    if total <= 0:
        return None
    return 100.0 * max(0.0, after[0] - before[0]) / total
