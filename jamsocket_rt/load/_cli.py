"""``jamsocket-rt load``: its arguments, their checks, and the run (see ``jamsocket_rt.cli``)."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from ..platform.config import (
    DevPlatform,
    FlagError,
    JamsocketPlatform,
    PlanePlatform,
    add_platform_arguments,
    platform_flags_given,
    resolve_platform,
)
from ._loop import LOOPS, resolve_loop, run_on_loop
from .config import (
    BUILTIN_SCENARIOS,
    DevTarget,
    FixedTarget,
    JamsocketTarget,
    LoadConfig,
    PlaneTarget,
    Target,
    parse_keys,
    parse_think_time,
    thresholds_from,
)

#: Exit status when a --fail-if threshold held.
EXIT_THRESHOLD = 3
#: Exit status of a usage error (as argparse's).
EXIT_USAGE = 2
#: Exit status when no session became ready: the run measured nothing.
EXIT_NO_SESSIONS = 4

_EPILOG = """\
Without a target, a dev server with the bundled example backend is started for the run.

--duration is the time under load: it counts from the moment every session is ready or
failed (after the ramp-up), so a backend's spawn time is not part of it. A session not ready
within --ready-timeout, or by the end of the run, counts as failed.

A plain Socket.IO server (no Jamsocket status service), serving /app/socket.io/ (the
Socket.IO path is the url's path + socket.io/; status_url is required but not read):
  jamsocket-rt load --assume-ready --connect-response '{"backend_id": "local",
    "spawned": false, "status": "ready", "token": "-", "url": "http://localhost:3000/app/",
    "status_url": "http://localhost:3000/"}'

Exit status: 0, 1 on an error, 2 on a usage error, 3 when a --fail-if held, 4 when no
session became ready (the run measured nothing, whatever --fail-if says).
"""


def _number(kind: type[int] | type[float]) -> Any:
    def convert(text: str) -> int | float:
        try:
            return kind(text)
        except ValueError:
            name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {name}, got {text!r}") from None

    return convert


def _keys(text: str) -> str | int:
    try:
        return parse_keys(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--keys: ")) from None


def _think(text: str) -> tuple[float, float]:
    try:
        return parse_think_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--think-time: ")) from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Declares the arguments of ``jamsocket-rt load``."""
    integer, number = _number(int), _number(float)
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    selectors = add_platform_arguments(
        parser, default="a dev server started for the run, with --dev-backend's backend"
    )
    selectors.add_argument(
        "--dev-backend",
        metavar="COMMAND",
        help="start a dev server for the run with this backend command (default: the "
        "bundled example backend)",
    )

    load = parser.add_argument_group("load")
    load.add_argument("--sessions", type=integer, default=10, metavar="N", help="default 10")
    load.add_argument(
        "--keys",
        type=_keys,
        default="shared",
        metavar="new|shared|K",
        help="a new backend per session, one shared key (default), or K keys round-robin",
    )
    load.add_argument("--key-prefix", default=None, help="default: jrt-load-RANDOM")
    load.add_argument(
        "--ramp-up",
        type=number,
        default=500.0,
        metavar="PER_S",
        help="sessions started per second (default 500; 0: all at once); the calls begin "
        "once every session has started",
    )
    load.add_argument(
        "--duration",
        type=number,
        default=None,
        metavar="SECONDS",
        help="seconds of load, counted once every session is ready or failed after the "
        "ramp-up (default 10 unless --iterations)",
    )
    load.add_argument(
        "--iterations", type=integer, default=None, metavar="N", help="iterations per session"
    )
    load.add_argument(
        "--rate",
        type=number,
        default=1.0,
        metavar="R",
        help="calls (iterations) per second per session, spread evenly (default 1; "
        "0: back to back)",
    )
    load.add_argument(
        "--in-flight",
        type=integer,
        default=1,
        metavar="W",
        help="concurrent iterations per session (default 1)",
    )
    load.add_argument(
        "--think-time",
        type=_think,
        default=(0.0, 0.0),
        metavar="S|MIN-MAX",
        help="pause after each iteration, with --rate 0",
    )
    load.add_argument(
        "--scenario",
        default="echo",
        metavar="NAME|PATH.py[:FUNC]",
        help="; ".join(f"{name}: {text}" for name, text in BUILTIN_SCENARIOS.items())
        + "; or a file with async def scenario(session, user) (default echo)",
    )
    load.add_argument(
        "--payload-size", type=integer, default=64, metavar="BYTES", help="default 64"
    )
    load.add_argument(
        "--call-timeout", type=number, default=10.0, metavar="SECONDS", help="default 10"
    )
    load.add_argument(
        "--ready-timeout",
        type=number,
        default=60.0,
        metavar="SECONDS",
        help="seconds a session has to become ready, else it counts as failed (default 60)",
    )
    load.add_argument(
        "--assume-ready",
        action="store_true",
        help="with --connect-response: skip the status check and connect at once (a plain "
        "Socket.IO server with no status service; see the example below)",
    )
    load.add_argument(
        "--transport",
        default="websocket",
        metavar="LIST",
        help="websocket and/or polling, comma-separated, in order (default websocket)",
    )
    load.add_argument(
        "--processes",
        type=integer,
        default=1,
        metavar="P",
        help="worker processes, one per core to use (default 1)",
    )
    load.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop where installed (auto, the default), asyncio, or uvloop",
    )
    load.add_argument(
        "--terminate-backends",
        action="store_true",
        help="terminate the backends this run spawned, at the end",
    )

    out = parser.add_argument_group("report")
    out.add_argument("--json", metavar="PATH", help="write the final report as JSON")
    out.add_argument(
        "--csv", metavar="PREFIX", help="write PREFIX_stats.csv and PREFIX_timeline.csv"
    )
    out.add_argument("--plot", metavar="PATH.png", help="plot latency over time and its spread")
    out.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="exit with status 3 when EXPR holds, e.g. 'p99>50ms', 'echo:p99.9>=200ms', "
        "'errors>0', 'error_rate>1%%', 'throughput<1000' (repeatable)",
    )
    out.add_argument(
        "--interval",
        type=number,
        default=1.0,
        metavar="SECONDS",
        help="seconds per progress line and timeline row (default 1)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress lines (warnings stay)")


def _target(args: argparse.Namespace) -> Target:
    """The load target of the platform flags; none of them: a dev server started for the run.

    Raises:
        FlagError: the flags are incomplete or contradictory.
        ConfigurationError: a JAMSOCKET_* variable's value is malformed.
    """
    platform = resolve_platform(args, default_jamsocket=False)
    if platform is None:
        return DevTarget(args.dev_backend)
    if args.dev_backend is not None:
        raise FlagError(f"{platform_flags_given(args)[0]}: not with --dev-backend")
    if isinstance(platform, DevPlatform):
        # The dev server takes "-" for every name, as the official clients send them.
        placeholder = "-"
        return JamsocketTarget(
            account=placeholder, token=placeholder, service=placeholder, api_url=platform.api_url
        )
    if isinstance(platform, JamsocketPlatform):
        return JamsocketTarget(
            account=platform.account,
            token=platform.token,
            service=platform.service,
            api_url=platform.api_url,
        )
    if isinstance(platform, PlanePlatform):
        return PlaneTarget(platform.controller_url, image=platform.image, token=platform.token)
    return FixedTarget(dict(platform.response))


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    """The LoadConfig of the parsed arguments.

    Raises:
        ValueError: an option is invalid (the message starts with its name).
    """
    duration = args.duration
    if duration is None and args.iterations is None:
        duration = 10.0
    return LoadConfig(
        target=_target(args),
        sessions=args.sessions,
        keys=args.keys,
        key_prefix=args.key_prefix or f"jrt-load-{secrets.token_hex(3)}",
        ramp_up=args.ramp_up,
        duration=duration,
        iterations=args.iterations,
        rate=args.rate,
        in_flight=args.in_flight,
        think_time=args.think_time,
        scenario=args.scenario,
        payload_size=args.payload_size,
        call_timeout=args.call_timeout,
        ready_timeout=args.ready_timeout,
        transports=tuple(t.strip() for t in args.transport.split(",") if t.strip()),
        processes=args.processes,
        interval=args.interval,
        loop=args.loop,
        thresholds=thresholds_from(args.fail_if),
        terminate_backends=args.terminate_backends,
        proxy=args.proxy,
        assume_ready=args.assume_ready,
    )


def run(args: argparse.Namespace, prog: str) -> int:
    """Runs ``jamsocket-rt load`` with parsed arguments; returns the exit status."""
    from .runner import run_load

    try:
        config = config_from_args(args)
        for option, path in (("--json", args.json), ("--plot", args.plot)):
            if path is not None and not Path(path).parent.is_dir():
                raise ValueError(f"{option}: the directory of {path!r} does not exist")
        if args.csv is not None and not Path(f"{args.csv}_stats.csv").parent.is_dir():
            raise ValueError(f"--csv: the directory of {args.csv!r} does not exist")
        from .runner import resolve_scenario

        scenario = resolve_scenario(config)
        loop = resolve_loop(config.loop)  # a missing uvloop is a usage error, before any load
    except ValueError as exc:
        if isinstance(exc, ConfigurationError) and not isinstance(exc, FlagError):
            raise  # a variable's value, not the command line: exit status 1, as for any error
        print(f"{prog} load: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # run_load records the loop it runs on and hands worker processes the same choice.
    result = run_on_loop(
        loop, run_load(config, scenario=scenario, progress=sys.stderr, live=not args.quiet)
    )
    report = result.report
    from .report import format_summary, write_csv, write_json

    print(format_summary(report), flush=True)
    if args.json:
        write_json(report, args.json)
        print(f"report: {args.json}")
    if args.csv:
        stats, timeline = write_csv(report, args.csv)
        print(f"csv: {stats}, {timeline}")
    if args.plot:
        from .plot import write_plot

        problem = write_plot(report, result.aggregate, args.plot)
        print(f"plot: {args.plot}" if problem is None else f"plot skipped: {problem}")
    if result.failure is not None:
        print(f"{prog} load: the run failed: {result.failure}", file=sys.stderr)
        return EXIT_NO_SESSIONS
    return EXIT_THRESHOLD if result.failed_thresholds else 0
