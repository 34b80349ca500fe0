"""Load testing of session backends: ``jamsocket-rt load`` and its building blocks.

The command line (``jamsocket-rt load --help``) covers the usual runs; in Python::

    import asyncio
    from jamsocket_rt.load import LoadConfig, run_load

    result = asyncio.run(run_load(LoadConfig(sessions=100, rate=5, duration=30)))
    print(result.report["operations"]["echo"]["p99_ms"])

A user scenario is an async function ``scenario(session, user)`` called once per iteration
(see :class:`VirtualUser` and ``examples/load_scenario.py``).

The sans-I/O core (:mod:`.histogram`, :mod:`.pacing`, :mod:`.stats`, :mod:`.thresholds`,
:mod:`.report`) does the arithmetic; :mod:`.runner` is the asyncio front end. Beyond one
machine, :mod:`jamsocket_rt.locust` puts sessions into Locust's distributed runner.
"""

from .config import (
    BUILTIN_SCENARIOS,
    DevTarget,
    FixedTarget,
    JamsocketTarget,
    LoadConfig,
    PlaneTarget,
    Target,
)
from .histogram import LatencyHistogram
from .pacing import Pacer, even_phase, van_der_corput
from .runner import LoadResult, run_load
from .scenarios import Scenario, VirtualUser
from .thresholds import Threshold, parse_threshold

__all__ = [
    "BUILTIN_SCENARIOS",
    "DevTarget",
    "FixedTarget",
    "JamsocketTarget",
    "LatencyHistogram",
    "LoadConfig",
    "LoadResult",
    "Pacer",
    "PlaneTarget",
    "Scenario",
    "Target",
    "Threshold",
    "VirtualUser",
    "even_phase",
    "parse_threshold",
    "run_load",
    "van_der_corput",
]
