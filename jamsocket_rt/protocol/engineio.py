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
    "EngineState",
    "OpenInfo",
    "PacketType",
    "ProtocolError",
    "parse_open",
]

#: The longest ping interval or timeout an OPEN packet may announce, in milliseconds: the
#: longest delay of a JavaScript timer (a Node server cannot wait longer).
MAX_PING_MS = 2**31 - 1
#: The largest maxPayload an OPEN packet may announce: JavaScript's largest exact integer.
MAX_PAYLOAD_LIMIT = 2**53 - 1


class ProtocolError(JamsocketError, ValueError):
    """The peer sent something that is not valid Engine.IO v4 / Socket.IO v5 (or websocket).

    The message names the problem; it never contains more than a short excerpt of the data.

    Args:
        message: what is wrong.
        close_code: the websocket close code to fail the connection with (RFC 6455 section
            7.4.1): 1002, a protocol error (the default); 1007, data that does not fit its
            type (text that is not UTF-8); 1009, a message too big to process.

    Attributes:
        close_code: as given.
    """

    def __init__(self, message: str = "", close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.close_code))


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
        ProtocolError: the data is not a JSON object with a string ``sid`` and integer
            ``pingInterval`` and ``pingTimeout`` from 0 to :data:`MAX_PING_MS` (``maxPayload``,
            when present, must be an integer from 1 to :data:`MAX_PAYLOAD_LIMIT`; it defaults
            to Engine.IO's 1,000,000). Numbers are bounded so that no value from the wire
            overflows a float or a timer further on.
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
    interval = _bounded_int(info, "pingInterval", MAX_PING_MS)
    timeout = _bounded_int(info, "pingTimeout", MAX_PING_MS)
    max_payload: Any = info.get("maxPayload", 1_000_000)
    if not _is_int(max_payload) or not 0 < max_payload <= MAX_PAYLOAD_LIMIT:
        raise ProtocolError(
            f"OPEN packet's maxPayload is not an integer from 1 to {MAX_PAYLOAD_LIMIT}: "
            f"{excerpt(repr(max_payload))}"
        )
    upgrades = info.get("upgrades", [])
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise ProtocolError("OPEN packet's upgrades is not a list of strings")
    return OpenInfo(sid, tuple(upgrades), interval / 1000.0, timeout / 1000.0, max_payload)


def _is_int(value: object) -> bool:
    # bool is an int subclass; true as a ping interval would be the server's bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_int(info: dict[str, Any], key: str, limit: int) -> int:
    value: Any = info.get(key)
    if not _is_int(value) or not 0 <= value <= limit:
        raise ProtocolError(
            f"OPEN packet's {key} is not an integer from 0 to {limit}: {excerpt(repr(value))}"
        )
    return int(value)


class EngineState:
    """The Engine.IO side of a client connection: the server's OPEN, liveness, frames to send.

    Attributes:
        open_info: the server's OPEN packet, once received.
        last_seen: ``clock()`` at the last received message (the subclass updates it).
    """

    __slots__ = (
        "_clock",
        "_liveness",
        "_outgoing",
        "_server_max_payload",
        "last_seen",
        "open_info",
    )

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.last_seen = clock()
        self.open_info: OpenInfo | None = None
        self._liveness: float | None = None
        self._server_max_payload = 1_000_000
        # (websocket opcode, payload) pairs the protocol itself needs written.
        self._outgoing: list[tuple[int, bytes]] = []

    def _opened(self, info: OpenInfo) -> None:
        self.open_info = info
        self._liveness = info.ping_interval + info.ping_timeout
        self._server_max_payload = info.max_payload

    @property
    def deadline(self) -> float | None:
        """When the connection counts as dead if nothing arrives (None before OPEN).

        Engine.IO servers ping every ``pingInterval`` and give up after ``pingTimeout``; a client
        that heard nothing for their sum is talking to a dead (or black-holed) connection.
        """
        if self._liveness is None:
            return None
        return self.last_seen + self._liveness

    def expired(self, now: float) -> bool:
        """True when ``now`` is past the :attr:`deadline`."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """The frames the protocol itself needs written (CONNECT, PONG), oldest first."""
        out = self._outgoing
        if out:
            self._outgoing = []
        return out
