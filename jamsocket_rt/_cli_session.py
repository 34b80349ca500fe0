"""``jamsocket-rt connect``, ``status`` and ``terminate``: talk to a backend from a terminal.

``connect`` prints the status walk, then every event as one JSON line on stdout (so it pipes
into ``jq``); ``--send`` and ``--call`` are one-shots; on a terminal with no one-shot it opens
a prompt with history and tab completion of the event names seen so far. Human-readable lines
go to stderr, coloured and aligned on a terminal and plain when redirected.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ._errors import JamsocketError
from ._models import BackendState, ConnectResponse
from .cli import subcommand
from .platform import Jamsocket, Plane, fetch_status
from .platform.clients import client_for
from .platform.config import (
    DevPlatform,
    FixedPlatform,
    FlagError,
    JamsocketPlatform,
    PlanePlatform,
    Platform,
    add_platform_arguments,
    platform_flags_given,
    read_connect_response,
    resolve_platform,
)
from .sync.session import SyncSession

_COLOURS = {"status": "36", "ready": "32", "end": "31", "event": "33", "dim": "2"}


class Console:
    """Where people read (stderr: coloured on a terminal) and where programs read (stdout)."""

    def __init__(self, human: TextIO | None = None, machine: TextIO | None = None) -> None:
        self.human = human or sys.stderr
        self.machine = machine or sys.stdout
        no_colour = "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"
        self.colour = self.human.isatty() and not no_colour
        self._lock = threading.Lock()  # handlers print from the session's loop thread

    def say(self, label: str, text: str, colour: str = "status") -> None:
        tag = f"{label:<10}"
        if self.colour:
            tag = f"\033[{_COLOURS[colour]}m{tag}\033[0m"
        with self._lock:
            print(f"{tag} {text}", file=self.human, flush=True)

    def emit(self, value: Any) -> None:
        with self._lock:
            print(json.dumps(value, default=_jsonable), file=self.machine, flush=True)


def _jsonable(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: Seconds a one-shot --call waits for its acknowledgement (a person is waiting).
ONE_SHOT_TIMEOUT = 10.0


class _EventArguments(argparse.Action):
    """``--send``/``--call EVENT [ARG ...]``: the event, then each argument parsed as JSON.

    A value that is not JSON is a usage error (exit 2) naming the flag and the argument.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        event, *texts = values
        parsed: list[Any] = []
        for position, text in enumerate(texts, start=1):
            try:
                parsed.append(json.loads(text))
            except json.JSONDecodeError as exc:
                raise argparse.ArgumentError(
                    self,
                    f"argument {position} ({text!r}) is not valid JSON ({exc.msg}); "
                    "quote a string as JSON: '\"text\"'",
                ) from None
        setattr(namespace, self.dest, (event, parsed))


# -- the platform ------------------------------------------------------------------------------

#: What ``connect``, ``status`` and ``terminate`` use when no flag names a platform.
_DEFAULT_PLATFORM = "the JAMSOCKET_* variables, as the official clients read them"


def _platform(args: argparse.Namespace) -> Platform:
    """The platform the flags and the environment name (Jamsocket by default).

    Raises:
        FlagError: the flags are incomplete or contradictory (what is wrong is named).
        ConfigurationError: a JAMSOCKET_* variable's value is malformed.
    """
    platform = resolve_platform(args, default_jamsocket=True)
    assert platform is not None, "Jamsocket is the default"
    return platform


def _api_platform(
    args: argparse.Namespace, command: str
) -> DevPlatform | JamsocketPlatform | PlanePlatform:
    platform = _platform(args)
    if isinstance(platform, FixedPlatform):
        raise FlagError(
            f"--connect-response: {command} needs a platform API (--dev, --jamsocket or --plane)"
        )
    return platform


def _run_api(
    platform: DevPlatform | JamsocketPlatform | PlanePlatform,
    call: Callable[[Jamsocket | Plane], Any],
    proxy: str | bool | None,
) -> Any:
    async def go() -> Any:
        async with client_for(platform, proxy=proxy) as api:
            return await call(api)

    return asyncio.run(go())


# -- connect -----------------------------------------------------------------------------------


def _configure_connect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "response",
        nargs="?",
        metavar="RESPONSE",
        help="a ConnectResponse JSON file, or - for stdin: --connect-response @RESPONSE "
        "(default: connect through the platform)",
    )
    parser.add_argument("--key", help="connect to the backend holding this key (or spawn it)")
    parser.add_argument("--user", help="the user name the backend sees (x-verified-username)")
    parser.add_argument(
        "--send",
        nargs="+",
        action=_EventArguments,
        metavar=("EVENT", "ARG"),
        help="send EVENT with zero or more arguments, each a JSON value, and exit",
    )
    parser.add_argument(
        "--call",
        nargs="+",
        action=_EventArguments,
        metavar=("EVENT", "ARG"),
        help="call EVENT with zero or more arguments, each a JSON value (--call add 2 3 calls "
        "add(2, 3)), print its acknowledgement as JSON, and exit",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=ONE_SHOT_TIMEOUT,
        help=f"seconds --call waits for the acknowledgement (default {ONE_SHOT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print every frame in and out on stderr (the jamsocket_rt.wire logger; no tokens)",
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=60.0, help="seconds to wait for the backend"
    )
    add_platform_arguments(parser, default=_DEFAULT_PLATFORM)


def _connect_platform(args: argparse.Namespace) -> Platform:
    """The platform, where the positional RESPONSE stands for ``--connect-response @RESPONSE``."""
    if args.response is None:
        return _platform(args)
    given = platform_flags_given(args)
    if given:
        raise FlagError(f"{given[0]}: not with RESPONSE (it names the backend already)")
    return FixedPlatform(read_connect_response(f"@{args.response}", "RESPONSE"))


def _connect(args: argparse.Namespace) -> ConnectResponse:
    platform = _connect_platform(args)
    fields = {k: v for k, v in (("key", args.key), ("user", args.user)) if v is not None}
    if isinstance(platform, FixedPlatform):
        if fields:
            raise FlagError(f"--{next(iter(fields))}: not with a given ConnectResponse")
        return platform.connect_response()
    response: ConnectResponse = _run_api(platform, lambda api: api.connect(**fields), args.proxy)
    return response


@subcommand(
    "connect",
    help="open a session: print the status walk and every event (JSON lines); send and call",
    configure=_configure_connect,
)
def _run_connect(args: argparse.Namespace) -> int:
    console = Console()
    one_shot = args.send or args.call
    response = _connect(args)
    console.say("backend", f"{response.backend_id} (spawned: {response.spawned})")

    if args.trace:
        _trace_to(console)
    session = SyncSession(response, ready_timeout=args.ready_timeout, proxy=args.proxy)
    known_events: set[str] = set()

    def show_status(state: BackendState) -> None:
        colour = "ready" if state.is_ready else "end" if state.is_terminated else "status"
        details = ""
        if state.termination_reason is not None:
            details = f"  reason={state.termination_reason}"
        if state.exit_error is not None:
            details += f"  exit_error={state.exit_error}"
        console.say(
            "status", f"{state.status!s:<17}{state.time:%H:%M:%S.%f}"[:-3] + details, colour
        )

    def show_event(event: str, *event_args: Any) -> None:
        known_events.add(event)
        console.emit({"event": event, "args": list(event_args)})

    session.on_status(show_status)
    if not one_shot:
        session.on("*", show_event)
    with session:
        if args.call:
            event, call_args = args.call
            try:
                reply = session.call(event, *call_args, timeout=args.timeout)
            except TimeoutError:
                console.say(
                    "error",
                    f"no acknowledgement of {event!r} within {args.timeout:g} s: the backend may "
                    "have no handler for that event, or its handler may not acknowledge "
                    "(--timeout waits longer)",
                    "end",
                )
                return 1
            console.emit(reply)
            return 0
        if args.send:
            event, send_args = args.send
            session.send(event, *send_args)
            return 0
        reads_stdin = args.response == "-" or args.connect_response == "@-"
        if sys.stdin.isatty() and not reads_stdin:
            return _prompt(session, console, known_events)
        _wait_until_terminated(session)
    return 0


class _ConsoleHandler(logging.Handler):
    """Hands the wire trace's lines to the console (stderr), labelled ``wire``."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.DEBUG)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.say("wire", record.getMessage(), "dim")


def _trace_to(console: Console) -> None:
    """Turns the wire trace on for this process, printed by ``console``."""
    wire = logging.getLogger("jamsocket_rt.wire")
    wire.addHandler(_ConsoleHandler(console))
    wire.setLevel(logging.DEBUG)
    wire.propagate = False  # printed once, whatever the root logger does


def _wait_until_terminated(session: SyncSession) -> None:
    ended = threading.Event()
    session.on_terminated(lambda state: ended.set())
    while not ended.wait(0.5):
        pass


_HELP = """commands:
  send EVENT [JSON]    send an event (fire-and-forget)
  call EVENT [JSON]    call an event and print the acknowledgement
  quit                 close the session (also Ctrl-D)"""


def completer(known_events: set[str], line: Callable[[], str]) -> Callable[[str, int], str | None]:
    """readline's completer: the commands first, then the event names seen so far."""

    def complete(text: str, state: int) -> str | None:
        words = line().split()
        starting = len(words) == 0 or (len(words) == 1 and not line().endswith(" "))
        pool = ["send", "call", "quit", "help"] if starting else sorted(known_events)
        matches = [word for word in pool if word.startswith(text)]
        return matches[state] if state < len(matches) else None

    return complete


def _prompt(session: SyncSession, console: Console, known_events: set[str]) -> int:
    try:
        import readline
    except ImportError:  # pragma: no cover (Windows)
        readline = None  # type: ignore[assignment]
    if readline is not None:
        readline.set_completer(completer(known_events, readline.get_line_buffer))
        readline.parse_and_bind("tab: complete")
    console.say("ready", "type 'help' for the commands", "ready")
    while session.terminated is None:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if not line:
            continue
        verb, _, rest = line.partition(" ")
        event, _, raw = rest.strip().partition(" ")
        if verb in ("quit", "exit"):
            break
        if verb not in ("send", "call") or not event:
            console.say("help", _HELP, "dim")
            continue
        try:
            value = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError as exc:
            console.say("error", f"not valid JSON: {exc.msg}", "end")
            continue
        known_events.add(event)
        args = () if value is None else (value,)
        try:
            if verb == "send":
                session.send(event, *args)
            else:
                console.emit(session.call(event, *args))
        except (JamsocketError, TimeoutError, TypeError) as exc:
            console.say("error", str(exc), "end")
    return 0


# -- status / terminate --------------------------------------------------------------------------


def _configure_backend_command(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backend_id", metavar="BACKEND_ID", help="the backend's id")
    add_platform_arguments(parser, default=_DEFAULT_PLATFORM)


def _configure_terminate(parser: argparse.ArgumentParser) -> None:
    _configure_backend_command(parser)
    parser.add_argument("--hard", action="store_true", help="kill it instead of asking it to stop")


@subcommand(
    "status", help="print a backend's latest status as JSON", configure=_configure_backend_command
)
def _run_status(args: argparse.Namespace) -> int:
    platform = _platform(args)
    state: BackendState
    if isinstance(platform, FixedPlatform):
        # A ConnectResponse carries its own status URL: no platform API needed.
        response = platform.connect_response()
        if response.backend_id != args.backend_id:
            raise FlagError(
                f"BACKEND_ID: {args.backend_id!r} is not the --connect-response's backend "
                f"({response.backend_id!r})"
            )
        state = asyncio.run(fetch_status(None, response))
    else:
        state = _run_api(platform, lambda api: api.status(args.backend_id), args.proxy)
    Console().emit(state.to_dict())
    return 0


@subcommand("terminate", help="terminate a backend", configure=_configure_terminate)
def _run_terminate(args: argparse.Namespace) -> int:
    platform = _api_platform(args, "terminate")
    _run_api(platform, lambda api: api.terminate(args.backend_id, hard=args.hard), args.proxy)
    Console().say(
        "terminate", f"{args.backend_id}: {'hard' if args.hard else 'soft'} terminate sent"
    )
    return 0
