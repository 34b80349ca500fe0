"""Plain words for what the report counts: the cause of an error kind, a threshold's verdict.

Error kinds (see :func:`~jamsocket_rt.load.stats.error_kind`) never carry a message, as
messages vary and may hold details nobody asked for; the cause is derived from the kind and
where it happened, so the console summary can say *why* next to *what*.
"""

from __future__ import annotations

import errno
import os
from typing import Any

__all__ = ["MACHINE_ERRORS", "NOT_READY", "cause_of", "threshold_text"]

#: The error kind of a session still not ready when the run ended.
NOT_READY = "NotReady"

#: Error codes that name a limit of the load machine, not of the backend.
MACHINE_ERRORS = {
    "EMFILE": "the open-file limit of the load process",
    "ENFILE": "the system-wide open-file limit",
    "EADDRNOTAVAIL": "the ephemeral ports of this machine",
    "ENOBUFS": "the kernel's socket buffers",
}

_BY_CLASS = {
    NOT_READY: "still not ready when the run ended",
    "ReadyTimeout": "backend not ready within --ready-timeout",
    "ApiTimeout": "the platform API did not answer in time",
    "ApiConnectionError": "the platform API or status service could not be reached",
    "BackendTerminated": "the backend terminated",
    "TokenExpired": "the proxy refused the token",
    "ConnectRefused": "the server refused the Socket.IO connection",
    "ConnectionLost": "the connection dropped",
    "SessionClosed": "the session was closed",
    "SendQueueFull": "the send queue was full",
    "StreamOverflow": "a stream's buffer overflowed",
}

_TIMEOUT_BY_PHASE = {
    "connect_api": "the platform API did not answer in time",
    "ready": "backend not ready within --ready-timeout",
    "socket_connect": "the Socket.IO handshake took too long",
    # The built-in scenarios that wait for a message rather than an acknowledgement.
    "ping": "no pong in time",
    "broadcast": "its own broadcast copy did not come back in time",
}


def cause_of(where: str, kind: str) -> str | None:
    """A few words on why errors of ``kind`` at ``where`` happened, or None if unknown.

    Args:
        where: an operation's name or a phase (``connect_api``, ``ready``...).
        kind: what :func:`~jamsocket_rt.load.stats.error_kind` made of the error.
    """
    name, _, detail = kind.partition(" ")
    if detail in MACHINE_ERRORS:
        return f"{MACHINE_ERRORS[detail]} is exhausted"
    if detail.isdigit() and name == "ApiError":
        return f"the platform API answered HTTP {detail}"
    if name in _BY_CLASS:
        return _BY_CLASS[name]
    if name == "TimeoutError":
        return _TIMEOUT_BY_PHASE.get(where, "no acknowledgement in time")
    if detail in errno.errorcode.values():
        return os.strerror(getattr(errno, detail)).lower()
    return None


def _value_text(metric: str, value: float) -> str:
    if metric in ("errors", "count", "failed_sessions"):
        return f"{value:g}"
    if metric == "error_rate":
        return f"{value:.3g}%"
    if metric == "throughput":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"
    # A latency, in milliseconds: in seconds from a second on, three significant digits.
    if value >= 1000:
        return f"{value / 1000:.3g} s"
    return f"{value:.3g} ms"


_NEGATION = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}


def threshold_text(result: dict[str, Any]) -> str:
    """A threshold's verdict, with units: ``threshold p99>50ms: ok (p99 2.47 ms <= 50 ms)``.

    Args:
        result: one entry of the report's ``thresholds`` (see ``evaluate_thresholds``).
    """
    verdict = "FAILED" if result["failed"] else "ok"
    value = result["value"]
    head = f"threshold {result['threshold']}: {verdict}"
    metric = result.get("metric")
    if value is None:
        return f"{head} (measured no data)"
    if metric is None:  # a report of an older version: no units known
        return f"{head} (measured {value:g})"
    # The comparison that held: the threshold's own when it failed, its negation when not.
    op = result["op"] if result["failed"] else _NEGATION[result["op"]]
    scope = f"{result['scope']}:" if result.get("scope") else ""
    shown, limit = _value_text(metric, value), _value_text(metric, result["limit"])
    return f"{head} ({scope}{metric} {shown} {op} {limit})"
