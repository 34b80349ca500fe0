"""Pass/fail thresholds for CI: ``--fail-if "p99>50ms"`` and the like.

Grammar: ``[SCOPE:]METRIC OP VALUE[UNIT]``, spaces allowed around OP.

SCOPE
    an operation's name (``echo``, ``ping``...) or a session phase (``connect_api``, ``ready``,
    ``socket_connect``); without it the metric covers every operation together.
METRIC
    latencies ``p50``, ``p99.9`` (any ``pN``), ``mean``, ``min``, ``max``, with a unit ``us``,
    ``ms`` (the default) or ``s``; ``errors`` (a count); ``error_rate`` (percent of operations,
    ``%`` optional); ``throughput`` (operations per second, ``/s`` optional); ``count``;
    ``failed_sessions`` (no scope).
OP
    ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``.

A threshold *fails the run* when its condition holds: ``p99>50ms`` fails when the 99th
percentile is above 50 ms, ``throughput<1000`` when fewer than 1000 operations ran per second.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

from attrs import frozen

__all__ = ["Threshold", "parse_threshold"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_LATENCY_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
_LATENCY = re.compile(r"p(\d+(?:\.\d+)?)|mean|min|max")
_PLAIN = {"errors", "count", "failed_sessions"}
_SYNTAX = re.compile(
    r"^\s*(?:(?P<scope>[^:<>=!]+?)\s*:\s*)?(?P<metric>[A-Za-z_][\w.]*)\s*"
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*"
    r"(?P<unit>[a-zµ%/]*)\s*$"
)


@frozen
class Threshold:
    """One parsed threshold.

    Attributes:
        text: what the user wrote.
        scope: the operation or phase it is about, or None for all operations.
        metric: ``p99``, ``max``, ``errors``, ``error_rate``, ``throughput``...
        op: the comparison operator.
        value: the limit in the metric's canonical unit: milliseconds for latencies, percent
            for ``error_rate``, per second for ``throughput``, else a count.
    """

    text: str
    scope: str | None
    metric: str
    op: str
    value: float

    @property
    def percentile(self) -> float | None:
        """The percentile of a ``pN`` metric, else None."""
        match = _LATENCY.fullmatch(self.metric)
        if match is None or match.group(1) is None:
            return None
        return float(match.group(1))

    @property
    def is_latency(self) -> bool:
        return _LATENCY.fullmatch(self.metric) is not None

    def fails(self, actual: float) -> bool:
        """True when ``actual`` (in the canonical unit) meets the failure condition."""
        return _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        return self.text


def parse_threshold(text: str) -> Threshold:
    """Parses ``[SCOPE:]METRIC OP VALUE[UNIT]`` (see the module docstring).

    Raises:
        ValueError: the text does not fit; the message quotes it and says what is wrong.
    """
    match = _SYNTAX.match(text)
    if match is None:
        raise ValueError(
            f"{text!r}: expected [SCOPE:]METRIC OP VALUE[UNIT], e.g. 'p99>50ms', "
            "'echo:p99.9>=200ms', 'errors>0', 'error_rate>1%', 'throughput<1000'"
        )
    scope = match.group("scope")
    metric = match.group("metric")
    unit = match.group("unit")
    value = float(match.group("value"))
    latency = _LATENCY.fullmatch(metric)
    if latency is not None:
        if latency.group(1) is not None and not 0 <= float(latency.group(1)) <= 100:
            raise ValueError(f"{text!r}: a percentile must be between 0 and 100")
        factor = _LATENCY_UNITS.get(unit or "ms")
        if factor is None:
            raise ValueError(f"{text!r}: a latency's unit is us, ms or s, not {unit!r}")
        value *= factor
    elif metric == "error_rate":
        if unit not in ("", "%"):
            raise ValueError(f"{text!r}: error_rate is in percent ('%' or nothing)")
    elif metric == "throughput":
        if unit not in ("", "/s"):
            raise ValueError(f"{text!r}: throughput is per second ('/s' or nothing)")
    elif metric in _PLAIN:
        if unit:
            raise ValueError(f"{text!r}: {metric} takes no unit")
        if metric == "failed_sessions" and scope is not None:
            raise ValueError(f"{text!r}: failed_sessions takes no scope")
    else:
        raise ValueError(
            f"{text!r}: unknown metric {metric!r} (pN, mean, min, max, errors, error_rate, "
            "throughput, count, failed_sessions)"
        )
    return Threshold(
        text=text.strip(),
        scope=scope.strip() if scope else None,
        metric=metric,
        op=match.group("op"),
        value=value,
    )
