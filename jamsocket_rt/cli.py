"""The ``jamsocket-rt`` command line.

Each subcommand is one function taking the parsed arguments and returning the exit status,
registered with :func:`subcommand` together with a function that declares its arguments::

    def _configure_status(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("backend_id")

    @subcommand("status", help="print a backend's status", configure=_configure_status)
    def _run_status(args: argparse.Namespace) -> int:
        ...
        return 0

A subcommand raising :class:`~jamsocket_rt.JamsocketError` or ``OSError`` gets its message
printed and exit status 1; Ctrl-C gives 130.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._errors import JamsocketError

Runner = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]

PROG = "jamsocket-rt"


@dataclass(frozen=True)
class Subcommand:
    """A registered subcommand: its name, one-line help, arguments and body."""

    name: str
    help: str
    configure: Configure
    run: Runner


#: Every subcommand, by name, in registration order (the order of ``--help``).
SUBCOMMANDS: dict[str, Subcommand] = {}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def subcommand(
    name: str, *, help: str, configure: Configure = _no_arguments
) -> Callable[[Runner], Runner]:
    """Registers the decorated function as the subcommand ``name``.

    Args:
        name: the word on the command line.
        help: one line for ``jamsocket-rt --help``.
        configure: declares the subcommand's arguments on its parser.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: a subcommand of that name is already registered.
    """

    def register(run: Runner) -> Runner:
        if name in SUBCOMMANDS:
            raise ValueError(f"the subcommand {name!r} is already registered")
        SUBCOMMANDS[name] = Subcommand(name, help, configure, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-parser per registered subcommand."""
    from . import _cli_session  # noqa: F401 - registers connect, status and terminate

    parser = argparse.ArgumentParser(
        prog=PROG, description="Real-time client tools for Jamsocket / Plane session backends."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in SUBCOMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: the arguments, without the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on an error, 2 on a usage error, 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return SUBCOMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        return 130
    except (JamsocketError, OSError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1


# -- dev ---------------------------------------------------------------------------------------


def _configure_dev(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        metavar="COMMAND",
        help="the session backend command, run by /bin/sh with PORT set "
        "(default: the bundled example backend)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="the API port (default 8080, as jamsocket dev)"
    )
    parser.add_argument(
        "--proxy-port", type=int, default=0, help="the proxy port (default: a free one)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the loopback address to serve on (127.0.0.1)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a backend has to open its port (default 30)",
    )
    parser.add_argument(
        "--terminate-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="SIGKILL a backend this long after SIGTERM (default 5)",
    )
    parser.add_argument("--quiet", action="store_true", help="hide the backends' output")


@subcommand(
    "dev",
    help="run the local dev server (the Jamsocket API, a token proxy, local backends)",
    configure=_configure_dev,
)
def _run_dev(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("jamsocket_rt.dev").setLevel(logging.INFO)
    asyncio.run(_serve_dev(args))
    return 0


async def _serve_dev(args: argparse.Namespace) -> None:
    from .dev import EXAMPLE_BACKEND, DevServer

    dev = DevServer(
        args.backend,
        host=args.host,
        port=args.port,
        proxy_port=args.proxy_port,
        startup_timeout=args.startup_timeout,
        terminate_grace=args.terminate_grace,
        output=sys.stdout,
        quiet=args.quiet,
    )
    async with dev:
        command = args.backend or shlex.join(EXAMPLE_BACKEND)
        print(
            f"jamsocket-rt dev server\n"
            f"  API:     {dev.api_url}\n"
            f"  proxy:   {dev.proxy_url}\n"
            f"  backend: {command}\n"
            f"\n"
            f"Connect (any account and service names work):\n"
            f"  curl -X POST {dev.connect_url()} -H 'Content-Type: application/json' -d '{{}}'\n"
            f"Clients in dev mode: JAMSOCKET_DEV=true JAMSOCKET_DEV_PORT={dev.port}\n"
            f"  (jamsocket-rt connect, status, terminate, load: --dev-port {dev.port})\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        await _wait_for_stop_signal()
        print("stopping: terminating every backend", flush=True)


async def _wait_for_stop_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        # A second Ctrl-C while backends stop interrupts the wait (their groups still die).
        for signum in signals:
            loop.remove_signal_handler(signum)


# -- demo --------------------------------------------------------------------------------------


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=int, default=200, help="echo calls per session for the round-trip times"
    )


@subcommand(
    "demo",
    help="run the library on the embedded dev server: spawn backends, open sessions, talk",
    configure=_configure_demo,
)
def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    asyncio.run(run_demo(sys.stdout, calls=args.calls))
    return 0


# -- load --------------------------------------------------------------------------------------


def _configure_load(parser: argparse.ArgumentParser) -> None:
    from .load._cli import configure

    configure(parser)


@subcommand(
    "load",
    help="load-test session backends: N sessions, paced calls, latency report, CI thresholds",
    configure=_configure_load,
)
def _run_load(args: argparse.Namespace) -> int:
    from .load._cli import run

    return run(args, PROG)


if __name__ == "__main__":
    sys.exit(main())
