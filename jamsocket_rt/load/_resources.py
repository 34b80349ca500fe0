"""The load process's own limits: open files, memory, CPU, the machine's load."""

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
    "load_average",
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
