"""Describing a frame for the wire trace (the ``jamsocket_rt.wire`` logger), without decoding it.

The transports log every frame in and out at DEBUG when, and only when, that logger is
enabled; what a line says is decided here, sans I/O. A Socket.IO text frame is read only as far
as its header: the Engine.IO type, the Socket.IO type, the attachment count, the namespace, the
acknowledgement id and the event name (the first string of the JSON array); the rest of the
payload is shown abbreviated. A CONNECT's payload (``auth``, which often carries credentials)
is never shown. Binary frames (attachments, msgpack packets) are "binary, N bytes" for now.
"""

from __future__ import annotations

import json.decoder
from collections.abc import Callable
from typing import Literal, cast

from attrs import frozen

__all__ = [
    "EXCERPT_LIMIT",
    "Direction",
    "FrameSummary",
    "describe_binary",
    "describe_frame",
    "trace_line",
]

Direction = Literal["in", "out"]

#: How many characters of a payload a trace line shows.
EXCERPT_LIMIT = 80

_ENGINEIO_TYPES = {
    "0": "OPEN",
    "1": "CLOSE",
    "2": "PING",
    "3": "PONG",
    "4": "MESSAGE",
    "5": "UPGRADE",
    "6": "NOOP",
}
_SOCKETIO_TYPES = {
    "0": "CONNECT",
    "1": "DISCONNECT",
    "2": "EVENT",
    "3": "ACK",
    "4": "CONNECT_ERROR",
    "5": "BINARY_EVENT",
    "6": "BINARY_ACK",
}
_REDACTED = "<redacted>"

# The JSON string scanner of the standard library (C when available): reads one string token
# at a position, nothing more. typeshed does not declare it.
_scanstring = cast(
    "Callable[[str, int], tuple[str, int]]",
    getattr(json.decoder, "scanstring"),  # noqa: B009
)


@frozen
class FrameSummary:
    """What the trace says of one frame.

    Attributes:
        kind: the Socket.IO packet type ("EVENT", "ACK", "CONNECT"...), the Engine.IO one for
            the others ("PING", "PONG", "OPEN", "CLOSE"...), "binary", or what else the
            transport names (a websocket control frame, say).
        size: the frame's size in bytes.
        nsp: the namespace of a Socket.IO packet ("/" when it names none).
        event: the event name of an EVENT or BINARY_EVENT.
        ack: the acknowledgement id, if any.
        attachments: how many binary attachments follow a BINARY_EVENT or BINARY_ACK.
        excerpt: the payload, abbreviated (redacted for a CONNECT).
    """

    kind: str
    size: int
    nsp: str | None = None
    event: str | None = None
    ack: int | None = None
    attachments: int | None = None
    excerpt: str = ""


def _abbreviate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"…(+{len(text) - limit})"


def describe_binary(size: int, kind: str = "binary") -> FrameSummary:
    """A binary frame (an attachment, a msgpack packet) of ``size`` bytes."""
    return FrameSummary(kind=kind, size=size)


def describe_frame(frame: str | bytes, limit: int = EXCERPT_LIMIT) -> FrameSummary:
    """Describes one Engine.IO text frame (a Socket.IO packet inside a MESSAGE) from its header.

    Never raises: what does not parse is shown as it is, abbreviated.

    Args:
        frame: the frame's text (bytes are read as UTF-8, errors replaced).
        limit: how many characters of the payload to show.

    Returns:
        The summary.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        size = len(frame)
        text = bytes(frame).decode("utf-8", "replace")
    else:
        text = frame
        size = len(frame.encode("utf-8", "replace"))
    if not text:
        return FrameSummary(kind="empty", size=size)
    eio = _ENGINEIO_TYPES.get(text[0])
    if eio is None:
        return FrameSummary(kind="unknown", size=size, excerpt=_abbreviate(text, limit))
    if eio != "MESSAGE" or len(text) < 2:
        return FrameSummary(kind=eio, size=size, excerpt=_abbreviate(text[1:], limit))
    kind = _SOCKETIO_TYPES.get(text[1])
    if kind is None:
        return FrameSummary(kind="MESSAGE", size=size, excerpt=_abbreviate(text[1:], limit))
    position = 2
    attachments = None
    if kind in ("BINARY_EVENT", "BINARY_ACK"):
        dash = text.find("-", position)
        if dash > position and text[position:dash].isdigit():
            attachments = int(text[position:dash])
            position = dash + 1
    nsp = "/"
    if text.startswith("/", position):
        comma = text.find(",", position)
        end = len(text) if comma < 0 else comma
        nsp = text[position:end]
        position = end + 1 if comma >= 0 else end
    start = position
    while position < len(text) and text[position].isdigit():
        position += 1
    ack = int(text[start:position]) if position > start else None
    payload = text[position:]
    event = None
    if kind in ("EVENT", "BINARY_EVENT"):
        event = _event_name(payload)
    # A CONNECT's payload is the auth (credentials, often): never shown.
    excerpt = _REDACTED if kind == "CONNECT" and payload else _abbreviate(payload, limit)
    return FrameSummary(
        kind=kind,
        size=size,
        nsp=nsp,
        event=event,
        ack=ack,
        attachments=attachments,
        excerpt=excerpt,
    )


def _event_name(payload: str) -> str | None:
    """The first element of a JSON array when it is a string, read without decoding the rest."""
    index = 1
    if not payload.startswith("["):
        return None
    while index < len(payload) and payload[index] in " \t\r\n":
        index += 1
    if not payload.startswith('"', index):
        return None
    try:
        name, _ = _scanstring(payload, index + 1)
    except ValueError:
        return None
    return name


def trace_line(direction: Direction, summary: FrameSummary) -> str:
    """One line of the wire trace, e.g. ``out EVENT nsp=/ event='move' ack=3 size=24 [1,2]``.

    Args:
        direction: "in" (from the server) or "out" (to it).
        summary: the frame, as :func:`describe_frame` or :func:`describe_binary` saw it.

    Returns:
        The line (fields that do not apply are left out).
    """
    if summary.kind == "binary":
        return f"{direction} binary, {summary.size} bytes"
    parts = [direction, summary.kind]
    if summary.nsp is not None:
        parts.append(f"nsp={summary.nsp}")
    if summary.event is not None:
        parts.append(f"event={summary.event!r}")
    if summary.ack is not None:
        parts.append(f"ack={summary.ack}")
    if summary.attachments is not None:
        parts.append(f"attachments={summary.attachments}")
    parts.append(f"size={summary.size}")
    if summary.excerpt:
        parts.append(summary.excerpt)
    return " ".join(parts)
