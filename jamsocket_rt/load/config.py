"""What a load run does: the target, the sessions, the pacing, the scenario, the outputs.

:class:`LoadConfig` checks every value when it is built and names the command-line option in
its error, so the CLI and a Python caller get the same messages. It travels to worker
processes as JSON (:meth:`LoadConfig.to_dict`); secrets in it (an API token) go through a
pipe, never on a command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
from attrs import frozen

from ..protocol.options import SessionOptions, TransportName
from ..protocol.proxy import parse_proxy
from ._loop import LOOPS
from .thresholds import Threshold, parse_threshold

__all__ = [
    "BUILTIN_SCENARIOS",
    "DevTarget",
    "FixedTarget",
    "JamsocketTarget",
    "LoadConfig",
    "PlaneTarget",
    "Target",
    "parse_keys",
    "parse_think_time",
]

#: Scenarios that need no file: a name and what one iteration does.
BUILTIN_SCENARIOS: dict[str, str] = {
    "echo": "call echo (with acknowledgement) and time the round trip",
    "ping": "send ping, wait for the matching pong, time it",
    "broadcast": "send broadcast; every session of the backend times its copy's arrival",
}


def _error(option: str, message: str) -> ValueError:
    return ValueError(f"{option}: {message}")


def _check_number(
    option: str, value: object, *, minimum: float, integer: bool = False, exclusive: bool = False
) -> None:
    ok_type = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        kind = "an integer" if integer else "a number"
        raise _error(option, f"expected {kind}, got {value!r}")
    if not math.isfinite(float(value)) or value < minimum or (exclusive and value == minimum):
        relation = "above" if exclusive else "at least"
        raise _error(option, f"expected a value {relation} {minimum:g}, got {value!r}")


@frozen
class DevTarget:
    """The local dev server, started for the run (in its own process) and stopped after.

    Attributes:
        backend: the backend command (None: the bundled example backend).
    """

    backend: str | None = None
    kind: Literal["dev"] = "dev"


@frozen
class JamsocketTarget:
    """The Jamsocket platform (or a running dev server: ``account=token=service="-"``).

    Attributes:
        account, token, service: as for :class:`~jamsocket_rt.Jamsocket`; all None reads
            the ``JAMSOCKET_*`` variables (:meth:`~jamsocket_rt.Jamsocket.from_env`;
            ``JAMSOCKET_DEV=true`` selects a running dev server).
        api_url: the API's base URL (None: the default).
    """

    account: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    service: str | None = None
    api_url: str | None = None
    kind: Literal["jamsocket"] = "jamsocket"

    @property
    def from_env(self) -> bool:
        return self.account is None and self.token is None and self.service is None


@frozen
class PlaneTarget:
    """A self-hosted Plane controller.

    Attributes:
        controller_url: its base URL.
        image: the image to spawn for a new backend.
        token: a bearer token for a controller behind an authenticating proxy.
    """

    controller_url: str
    image: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    kind: Literal["plane"] = "plane"


@frozen
class FixedTarget:
    """One ConnectResponse that every session uses (no platform API calls at all).

    Attributes:
        response: the ConnectResponse as a dict (its fields as the API returns them).
    """

    response: Mapping[str, Any] = attrs.field(repr=False)
    kind: Literal["fixed"] = "fixed"


Target = DevTarget | JamsocketTarget | PlaneTarget | FixedTarget
_TARGETS: dict[str, type[Target]] = {
    "dev": DevTarget,
    "jamsocket": JamsocketTarget,
    "plane": PlaneTarget,
    "fixed": FixedTarget,
}


def parse_keys(text: str) -> str | int:
    """``--keys``: ``new`` (a backend per session), ``shared`` (one key) or a count K.

    Raises:
        ValueError: anything else.
    """
    value = text.strip().lower()
    if value in ("new", "shared"):
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise _error("--keys", f"expected 'new', 'shared' or a number of keys >= 1, got {text!r}")


def parse_think_time(text: str) -> tuple[float, float]:
    """``--think-time``: ``SECONDS`` or ``MIN-MAX`` (a uniform random pause).

    Raises:
        ValueError: not one or two non-negative numbers, or MIN > MAX.
    """
    parts = text.split("-")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or any(not math.isfinite(v) or v < 0 for v in values):
        raise _error("--think-time", f"expected SECONDS or MIN-MAX (non-negative), got {text!r}")
    low, high = values[0], values[-1]
    if low > high:
        raise _error("--think-time", f"MIN is above MAX in {text!r}")
    return low, high


@frozen(kw_only=True)
class LoadConfig:
    """A load run, fully described. Every field is checked when the object is built.

    Attributes:
        target: where sessions come from (default: a dev server with the example backend).
        sessions: how many sessions (``--sessions``).
        keys: ``"new"``, ``"shared"`` or a number K of keys used round-robin (``--keys``).
        key_prefix: the keys' prefix (``--key-prefix``); keys are ``PREFIX`` or ``PREFIX-i``.
        ramp_up: sessions started per second; 0 starts them all at once (``--ramp-up``).
            Iterations begin when the ramp-up ends and every session is ready (or failed), so
            connects and measured load never mix.
        duration: seconds of load (``--duration``), counted from the moment every session of
            a worker is ready or failed after the ramp-up (at the latest ``ready_timeout``
            after it), so a backend's spawn time does not eat into it; None: no limit.
        iterations: iterations per session (``--iterations``); None: no limit. At least one
            of ``duration`` and ``iterations`` is set; the run ends at whichever comes first.
        rate: iterations (calls) per second per session; 0 runs them back to back (``--rate``).
        in_flight: concurrent iterations per session (``--in-flight``).
        think_time: (min, max) seconds of pause after each iteration when ``rate`` is 0.
        scenario: a built-in name or ``PATH.py[:FUNCTION]`` (``--scenario``).
        payload_size: bytes of padding in each message (``--payload-size``).
        call_timeout: seconds before a call or a wait counts as a timeout (``--call-timeout``).
        ready_timeout: seconds a backend has to become ready (``--ready-timeout``); a session
            not ready by then, or by the end of the run, counts as failed.
        assume_ready: skip the status check and connect at once (``--assume-ready``): for a
            fixed ConnectResponse of a plain Socket.IO server with no status service.
        transports: the Session's transports (``--transport``).
        processes: worker processes; sessions are dealt out among them (``--processes``).
        interval: seconds between progress lines and timeline rows (``--interval``).
        loop: the event loop of the ``jamsocket-rt load`` process and of worker processes:
            ``auto`` (uvloop where installed), ``asyncio`` or ``uvloop`` (``--loop``). A
            caller of :func:`~jamsocket_rt.load.run_load` with one process brings its own.
        thresholds: ``--fail-if`` conditions.
        terminate_backends: terminate the backends this run spawned, at the end.
        proxy: the HTTP proxy of every connection (``--proxy``): None (the environment's),
            a URL, or False (none).
    """

    target: Target = attrs.field(factory=DevTarget)
    sessions: int = 10
    keys: str | int = "shared"
    key_prefix: str = "jrt-load"
    ramp_up: float = 500.0
    duration: float | None = 10.0
    iterations: int | None = None
    rate: float = 1.0
    in_flight: int = 1
    think_time: tuple[float, float] = (0.0, 0.0)
    scenario: str = "echo"
    payload_size: int = 64
    call_timeout: float = 10.0
    ready_timeout: float = 60.0
    transports: tuple[TransportName, ...] = ("websocket",)
    processes: int = 1
    interval: float = 1.0
    loop: str = "auto"
    thresholds: tuple[Threshold, ...] = ()
    terminate_backends: bool = False
    proxy: str | bool | None = None
    assume_ready: bool = False

    def __attrs_post_init__(self) -> None:
        _check_number("--sessions", self.sessions, minimum=1, integer=True)
        if not (self.keys in ("new", "shared") or (isinstance(self.keys, int) and self.keys >= 1)):
            raise _error("--keys", f"expected 'new', 'shared' or a number >= 1, got {self.keys!r}")
        if not isinstance(self.key_prefix, str) or not self.key_prefix:
            raise _error("--key-prefix", "expected a non-empty string")
        _check_number("--ramp-up", self.ramp_up, minimum=0)
        if self.duration is None and self.iterations is None:
            raise _error("--duration", "give --duration, --iterations or both")
        if self.duration is not None:
            _check_number("--duration", self.duration, minimum=0, exclusive=True)
        if self.iterations is not None:
            _check_number("--iterations", self.iterations, minimum=1, integer=True)
        _check_number("--rate", self.rate, minimum=0)
        _check_number("--in-flight", self.in_flight, minimum=1, integer=True)
        if self.think_time != (0.0, 0.0):
            low, high = self.think_time
            _check_number("--think-time", low, minimum=0)
            _check_number("--think-time", high, minimum=low)
            if self.rate > 0:
                raise _error(
                    "--think-time",
                    "applies only with --rate 0 (with a rate, the pacing sets the pauses)",
                )
        if not isinstance(self.scenario, str) or not self.scenario:
            raise _error("--scenario", "expected a built-in name or PATH.py[:FUNCTION]")
        if self.scenario not in BUILTIN_SCENARIOS and not self.scenario_path:
            raise _error(
                "--scenario",
                f"expected one of {', '.join(BUILTIN_SCENARIOS)} or PATH.py[:FUNCTION], "
                f"got {self.scenario!r}",
            )
        _check_number("--payload-size", self.payload_size, minimum=0, integer=True)
        _check_number("--call-timeout", self.call_timeout, minimum=0, exclusive=True)
        _check_number("--ready-timeout", self.ready_timeout, minimum=0, exclusive=True)
        if (
            isinstance(self.transports, str)
            or not self.transports
            or not set(self.transports) <= {"websocket", "polling"}
        ):
            raise _error("--transport", "expected websocket and/or polling")
        _check_number("--processes", self.processes, minimum=1, integer=True)
        if self.processes > self.sessions:
            raise _error("--processes", f"{self.processes} processes for {self.sessions} sessions")
        _check_number("--interval", self.interval, minimum=0.05)
        if self.loop not in LOOPS:
            raise _error("--loop", f"expected one of {', '.join(LOOPS)}, got {self.loop!r}")
        if self.scenario == "broadcast" and self.keys == "new":
            raise _error(
                "--keys", "the broadcast scenario needs sessions that share backends (not 'new')"
            )
        if isinstance(self.proxy, str):
            try:
                parse_proxy(self.proxy)
            except ValueError as exc:
                raise _error("--proxy", str(exc).removeprefix("proxy: ")) from None
        if isinstance(self.target, FixedTarget) and self.keys != "shared":
            raise _error("--keys", "a fixed ConnectResponse is one backend: use --keys shared")
        if self.assume_ready and not isinstance(self.target, FixedTarget):
            raise _error("--assume-ready", "only with --connect-response")

    # -- derived ------------------------------------------------------------------------------

    @property
    def scenario_path(self) -> str | None:
        """The file of a user scenario (``PATH.py`` or ``PATH.py:FUNCTION``), else None."""
        path = self.scenario.rsplit(":", 1)[0] if ":" in self.scenario else self.scenario
        return path if path.endswith(".py") else None

    @property
    def scenario_function(self) -> str:
        """The function a user scenario file is asked for (default ``scenario``)."""
        if self.scenario_path and ":" in self.scenario:
            return self.scenario.rsplit(":", 1)[1] or "scenario"
        return "scenario"

    @property
    def ramp_seconds(self) -> float:
        """How long the ramp-up lasts: the last session starts this long after the first."""
        return (self.sessions - 1) / self.ramp_up if self.ramp_up > 0 else 0.0

    def key_for(self, index: int) -> str | None:
        """The connect key of session ``index`` (None: a new backend)."""
        if self.keys == "new":
            return None
        if self.keys == "shared":
            return self.key_prefix
        assert isinstance(self.keys, int)
        return f"{self.key_prefix}-{index % self.keys}"

    # -- exchange -----------------------------------------------------------------------------

    def session_options(self) -> SessionOptions:
        """The options of every Session of the run (validated once, not once per session)."""
        return SessionOptions(
            call_timeout=self.call_timeout,
            ready_timeout=self.ready_timeout,
            transports=self.transports,
            proxy=self.proxy,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (with the token: hand it to a worker through a pipe only)."""
        data = attrs.asdict(self, recurse=True)
        data["thresholds"] = [t.text for t in self.thresholds]
        data["think_time"] = list(self.think_time)
        data["transports"] = list(self.transports)
        return data

    def describe(self) -> dict[str, Any]:
        """The configuration for a report: like :meth:`to_dict` without secrets."""
        data = self.to_dict()
        target = dict(data["target"])
        if target.get("token") is not None:
            target["token"] = "<redacted>"  # noqa: S105 - a placeholder, not a password
        if isinstance(data.get("proxy"), str):
            data["proxy"] = parse_proxy(data["proxy"]).where  # without its credentials
        if target["kind"] == "fixed":
            response = target["response"]
            target["response"] = {"backend_id": response.get("backend_id")}
        data["target"] = target
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadConfig:
        """The config :meth:`to_dict` described.

        Raises:
            ValueError: a value is out of range or the target kind is unknown.
        """
        fields = dict(data)
        target = dict(fields.pop("target", {"kind": "dev"}))
        target_cls = _TARGETS.get(str(target.get("kind")))
        if target_cls is None:
            raise ValueError(f"unknown target kind {target.get('kind')!r}")
        thresholds = tuple(parse_threshold(text) for text in fields.pop("thresholds", ()))
        think = fields.pop("think_time", (0.0, 0.0))
        transports = fields.pop("transports", ("websocket",))
        return cls(
            target=target_cls(**target),
            thresholds=thresholds,
            think_time=(float(think[0]), float(think[1])),
            transports=tuple(transports),
            **fields,
        )


def thresholds_from(texts: Sequence[str]) -> tuple[Threshold, ...]:
    """Parses every ``--fail-if`` text.

    Raises:
        ValueError: one does not parse (the message names ``--fail-if`` and quotes it).
    """
    result = []
    for text in texts:
        try:
            result.append(parse_threshold(text))
        except ValueError as exc:
            raise _error("--fail-if", str(exc)) from None
    return tuple(result)
