"""Engine.IO v4 packets, sans I/O.

Over the websocket transport one websocket message is one Engine.IO packet: a text message is
``<type digit><data>``; a binary message is a MESSAGE packet whose data is the raw bytes (no
type prefix). The server opens with an OPEN packet (a JSON object), then sends PING every
``pingInterval`` ms and expects PONG within ``pingTimeout`` ms; the client never pings.

Long-polling (``\\x1e``-separated payloads, base64 ``b`` packets) is not spoken here: the
python-socketio transport handles that, so this module only knows what the websocket needs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from attrs import frozen

from .._errors import JamsocketError

__all__ = [
    "CLOSE",
    "MESSAGE",
    "NOOP",
    "OPEN",
    "PING",
    "PONG",
    "UPGRADE",
    "OpenInfo",
    "PacketType",
    "ProtocolError",
    "parse_open",
]


class ProtocolError(JamsocketError, ValueError):
    """The peer sent something that is not valid Engine.IO v4 / Socket.IO v5.

    The message names the problem; it never contains more than a short excerpt of the data.
    """


class PacketType(IntEnum):
    """Engine.IO v4 packet types (the first character of a text packet)."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


# The type prefixes as characters: comparing one character beats int() on the hot path.
OPEN = "0"
CLOSE = "1"
PING = "2"
PONG = "3"
MESSAGE = "4"
UPGRADE = "5"
NOOP = "6"


@frozen
class OpenInfo:
    """What the server's OPEN packet announces.

    Attributes:
        sid: the Engine.IO session id (not the Socket.IO one).
        upgrades: transports the server would upgrade to (empty on a websocket).
        ping_interval: seconds between the server's pings.
        ping_timeout: seconds the server waits for a pong (and we allow on top of the interval).
        max_payload: the largest message the server accepts from us, in bytes.
    """

    sid: str
    upgrades: tuple[str, ...]
    ping_interval: float
    ping_timeout: float
    max_payload: int


def excerpt(data: str | bytes, limit: int = 40) -> str:
    """A short, printable excerpt of a packet for error messages."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


def parse_open(data: str, loads: Callable[[str], Any]) -> OpenInfo:
    """Parses the JSON of an OPEN packet (the text after the ``0``).

    Args:
        data: the packet's data, without the type digit.
        loads: the JSON decoder.

    Returns:
        The handshake values, durations converted to seconds.

    Raises:
        ProtocolError: the data is not a JSON object with a string ``sid`` and non-negative
            integer ``pingInterval`` and ``pingTimeout`` (``maxPayload``, when present, must be a
            positive integer; it defaults to Engine.IO's 1,000,000).
    """
    try:
        info = loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(f"OPEN packet is not JSON: {excerpt(data)}") from None
    if not isinstance(info, dict):
        raise ProtocolError(f"OPEN packet is not a JSON object: {excerpt(data)}")
    sid = info.get("sid")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("OPEN packet has no string sid")
    interval = _non_negative_int(info, "pingInterval")
    timeout = _non_negative_int(info, "pingTimeout")
    max_payload: Any = info.get("maxPayload", 1_000_000)
    if not _is_int(max_payload) or max_payload <= 0:
        raise ProtocolError(f"OPEN packet's maxPayload is not a positive integer: {max_payload!r}")
    upgrades = info.get("upgrades", [])
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise ProtocolError("OPEN packet's upgrades is not a list of strings")
    return OpenInfo(sid, tuple(upgrades), interval / 1000.0, timeout / 1000.0, max_payload)


def _is_int(value: object) -> bool:
    # bool is an int subclass; true as a ping interval would be the server's bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative_int(info: dict[str, Any], key: str) -> int:
    value: Any = info.get(key)
    if not _is_int(value) or value < 0:
        raise ProtocolError(f"OPEN packet's {key} is not a non-negative integer: {value!r}")
    return int(value)
