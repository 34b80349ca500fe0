"""A Session's options: one frozen attrs class, validated once, shared by every front end.

:class:`~jamsocket_rt.Session`, :class:`~jamsocket_rt.SyncSession`, the load runner and the
Locust user all take their options as a :class:`SessionOptions`, so a misspelt option is a
TypeError at construction (and a mypy error), and a value out of range is a ValueError naming
the option, wherever the options come from.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import attrs
from attrs import field, frozen

from .events import DEFAULT_NAMESPACE
from .msgpack import load_msgpack
from .proxy import ProxySetting, parse_proxy
from .session import check_event_name
from .socketio import check_namespace

__all__ = [
    "OVERFLOW_POLICIES",
    "PARSERS",
    "TRANSPORTS",
    "Auth",
    "AuthCallable",
    "Overflow",
    "ParserName",
    "SessionOptions",
    "TransportName",
]

TransportName = Literal["websocket", "polling"]
Overflow = Literal["error", "drop_oldest", "pause"]
ParserName = Literal["json", "msgpack"]

TRANSPORTS: tuple[TransportName, ...] = ("websocket", "polling")
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("error", "drop_oldest", "pause")
PARSERS: tuple[ParserName, ...] = ("json", "msgpack")

#: ``auth=`` as a function, called for every CONNECT (sync, or async returning an awaitable).
AuthCallable = Callable[[], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]
#: What ``auth=`` takes: a mapping, a function that makes one for every CONNECT, or None.
Auth = Mapping[str, Any] | AuthCallable | None


def _positive_number(name: str, value: object, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if (
        value is None
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value <= 0
    ):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


def _seconds(allow_none: bool) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        _positive_number(attribute.name, value, allow_none)

    return check


def _integer(minimum: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
            raise ValueError(f"{attribute.name}: expected {wanted}")

    return check


def _transports(value: Sequence[str]) -> tuple[TransportName, ...]:
    if isinstance(value, str) or not value or not set(value) <= set(TRANSPORTS):
        raise ValueError(f"transports: expected a sequence drawn from {TRANSPORTS}")
    return tuple(value)  # type: ignore[arg-type]  # checked just above


def _delays(value: tuple[float, float]) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"reconnect_delay: expected (initial, maximum) seconds, got {value!r}")
    initial, maximum = value
    _positive_number("reconnect_delay[0]", initial, allow_none=False)
    _positive_number("reconnect_delay[1]", maximum, allow_none=False)
    if initial > maximum:
        raise ValueError(
            f"reconnect_delay: the initial delay ({initial:g} s) is above the maximum "
            f"({maximum:g} s); give (initial, maximum)"
        )
    return (initial, maximum)


def _check_grace(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # Zero is allowed: reconnect at once.
    number = value + 1e-9 if isinstance(value, (int, float)) else value
    _positive_number(attribute.name, number, allow_none=False)


def _check_probe(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        check_event_name(value)


def _check_namespace(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_namespace(value)


#: The headers of the many sessions that set none: one shared, read-only mapping.
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _copy_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value) if value else _NO_HEADERS


def _auth(value: Auth) -> Mapping[str, Any] | AuthCallable | None:
    if value is None or callable(value):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"auth: expected a mapping, a function that returns one, or None; "
            f"got {type(value).__name__}"
        )
    return dict(value)


def _query(value: Mapping[str, str] | None) -> Mapping[str, str]:
    if not value:
        return _NO_HEADERS
    if not isinstance(value, Mapping):
        raise TypeError(f"query: expected a mapping of strings, got {type(value).__name__}")
    bad = [
        key for key, item in value.items() if not isinstance(key, str) or not isinstance(item, str)
    ]
    if bad:
        raise TypeError(f"query: keys and values must be strings; not so for {bad!r}")
    reserved = sorted({"EIO", "transport", "sid", "t"} & set(value))
    if reserved:
        raise ValueError(f"query: {reserved} belong to Engine.IO and cannot be set")
    return MappingProxyType(dict(value))


def _check_proxy(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or value is False or value is True:
        return
    if not isinstance(value, str):
        raise TypeError(f"proxy: expected a URL, False or None; got {type(value).__name__}")
    parse_proxy(value)  # raises ConfigurationError naming "proxy"


def _check_parser(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in PARSERS:
        raise ValueError(f"parser: expected one of {PARSERS}, got {value!r}")
    if value == "msgpack":
        load_msgpack()  # at construction, not at the first connect


def _check_attempts(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"reconnect_attempts: expected a positive integer or None, got {value!r}")


@frozen(kw_only=True)
class SessionOptions:
    """How a Session connects, waits and buffers (every field has the Session's default).

    Attributes:
        ready_timeout: seconds to wait for the backend to become ready (None: forever).
        call_timeout: default timeout of ``call`` in seconds (None: no timeout).
        connect_timeout: seconds for one Socket.IO handshake.
        transports: "websocket" and/or "polling", in order of preference.
        headers: extra HTTP headers for the Socket.IO handshake.
        auth: the Socket.IO ``auth`` payload (for example to hand the backend the
            secret_token): a mapping, or a function (sync or async) that returns one, called
            for every CONNECT (reconnects and token renewals included).
        query: query parameters sent on every Engine.IO request (the backend's
            ``socket.handshake.query``).
        parser: the Socket.IO parser the backend uses: "json" (socket.io's default) or
            "msgpack" (``socket.io-msgpack-parser``; needs the ``msgpack`` extra).
        ssl: None verifies TLS certificates (the default); an SSLContext is used as is;
            ``False`` disables verification (explicitly, never by default).
        proxy: the HTTP proxy of every connection the session opens (the Socket.IO connection,
            status reads, ready_url): None (the default) follows ``HTTPS_PROXY`` /
            ``HTTP_PROXY`` / ``NO_PROXY``; a URL (``http://user:password@host:port``) is used
            for everything; False connects directly.
        max_queue: how many sends and calls may wait for a connection.
        reconnect: reconnect after a connection loss (while the backend lives).
        reconnect_delay: (initial, maximum) backoff between reconnect attempts, seconds.
        reconnect_attempts: after this many failed attempts in a row the session fails
            (None, the default: no limit).
        disconnect_grace: after a connection loss, how long to wait for a ``terminated``
            status before trying to reconnect (the disconnect arrives a little before it).
        stream_maxsize: default buffer of ``stream()``.
        max_payload: largest inbound message accepted, in bytes; a larger one ends the
            connection (reported to ``on_disconnect``), which then reconnects.
        latency_probe: an event the backend acknowledges (the example backend's "echo"),
            called every ``latency_interval`` seconds while connected so that
            :attr:`latency` stays fresh when the session is idle; None (the default)
            measures the session's own calls only.
        latency_interval: seconds between latency probes.
        max_backlog: how many handler runs may wait for slow (async) handlers; at this
            high-water mark the session stops reading from the connection (back-pressure:
            nothing is dropped, everything waits unread) until the backlog is down to half.
            A handler that awaits ``call()`` while the backlog is full waits for an answer
            that cannot be read until the call times out: keep such handlers few and short.
        namespace: the Socket.IO namespace the Session itself is ("/" by default); more
            namespaces share its connection through ``Session.namespace()``.
        transport_factory: makes the Transport for a ConnectTarget (tests and benchmarks).

    Raises:
        ValueError: a value is out of range (the message starts with the option's name).
        ConfigurationError: ``parser="msgpack"`` without the ``msgpack`` package (a
            ValueError too).
        TypeError: an unknown option.
    """

    ready_timeout: float | None = field(default=60.0, validator=_seconds(True))
    call_timeout: float | None = field(default=30.0, validator=_seconds(True))
    connect_timeout: float = field(default=10.0, validator=_seconds(False))
    transports: tuple[TransportName, ...] = field(default=("websocket",), converter=_transports)
    headers: Mapping[str, str] = field(default=_NO_HEADERS, converter=_copy_mapping, repr=False)
    auth: Mapping[str, Any] | AuthCallable | None = field(default=None, converter=_auth, repr=False)
    query: Mapping[str, str] = field(default=_NO_HEADERS, converter=_query, repr=False)
    parser: ParserName = field(default="json", validator=_check_parser)
    ssl: ssl_module.SSLContext | bool | None = None
    proxy: ProxySetting = field(default=None, validator=_check_proxy, repr=False)
    max_queue: int = field(default=10_000, validator=_integer(1))
    reconnect: bool = True
    reconnect_delay: tuple[float, float] = field(default=(0.1, 10.0), converter=_delays)
    reconnect_attempts: int | None = field(default=None, validator=_check_attempts)
    disconnect_grace: float = field(default=0.25, validator=_check_grace)
    stream_maxsize: int = field(default=1000, validator=_integer(1))
    max_payload: int = field(default=16 * 1024 * 1024, validator=_integer(1))
    max_backlog: int = field(default=1000, validator=_integer(2))
    latency_probe: str | None = field(default=None, validator=_check_probe)
    latency_interval: float = field(default=5.0, validator=_seconds(False))
    namespace: str = field(default=DEFAULT_NAMESPACE, validator=_check_namespace)
    transport_factory: Callable[..., Any] | None = field(default=None, repr=False)

    def evolve(self, **changes: Any) -> SessionOptions:
        """A copy with ``changes`` applied (validated like a new instance)."""
        return attrs.evolve(self, **changes)
