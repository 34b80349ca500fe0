"""The wire trace's I/O side: every frame in and out, at DEBUG on ``jamsocket_rt.wire``.

What a line says is :mod:`jamsocket_rt.protocol.trace`'s; this module only logs it, with the
token-bearing path cut out (:func:`._common.redact`). Transports call it only after
``WIRE.isEnabledFor(DEBUG)`` (cached by :mod:`logging`): with the logger off a frame costs that
one check, nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..protocol.trace import (
    Direction,
    FrameSummary,
    describe_binary,
    describe_frame,
    trace_line,
)
from ..protocol.websocket import Close, Ping
from ._common import redact
from .base import ConnectTarget

__all__ = ["DEBUG", "WIRE", "trace_connect", "trace_frames", "trace_messages", "trace_packet"]

#: The wire trace's logger (``jamsocket-rt connect --trace`` turns it on).
WIRE = logging.getLogger("jamsocket_rt.wire")
DEBUG = logging.DEBUG

# websocket opcodes (RFC 6455 section 5.2)
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 1, 2, 8, 9, 10
_CONTROL = {_CLOSE: "WS_CLOSE", _PING: "WS_PING", _PONG: "WS_PONG"}


def _log(line: str, target: ConnectTarget | None) -> None:
    WIRE.debug("%s", line if target is None else redact(line, target))


def trace_connect(url: str, target: ConnectTarget) -> None:
    """Logs where a transport connects: the URL without the token, query values hidden."""
    base, _, _ = url.partition("?")
    keys = ",".join(target.query) if target.query else "-"
    _log(f"connect {base} query keys: {keys}", target)


def _describe_bytes(payload: bytes | bytearray, target: ConnectTarget | None) -> FrameSummary:
    # With the msgpack parser a binary message is a whole Socket.IO packet; with JSON, an
    # attachment (its bytes are the user's: only the size is shown).
    if target is not None and target.parser == "msgpack":
        from ..protocol.msgpack import describe_packet

        return describe_packet(bytes(payload))
    return describe_binary(len(payload))


def trace_frames(frames: Iterable[tuple[int, bytes]], target: ConnectTarget | None) -> None:
    """Logs websocket frames written to the server: (opcode, payload) pairs."""
    for opcode, payload in frames:
        if opcode == _TEXT:
            summary = describe_frame(payload)
        elif opcode == _BINARY:
            summary = _describe_bytes(payload, target)
        else:
            summary = describe_binary(len(payload), _CONTROL.get(opcode, f"opcode {opcode}"))
        _log(trace_line("out", summary), target)


def trace_messages(messages: Iterable[Any], target: ConnectTarget | None) -> None:
    """Logs websocket messages read from the server (text, binary, ping, close)."""
    for message in messages:
        if isinstance(message, str):
            summary = describe_frame(message)
        elif isinstance(message, (bytes, bytearray)):
            summary = _describe_bytes(message, target)
        elif isinstance(message, Ping):
            summary = describe_binary(len(message.payload), "WS_PING")
        elif isinstance(message, Close):
            summary = describe_binary(0, f"WS_CLOSE code={message.code}")
        else:
            summary = describe_binary(0, type(message).__name__)
        _log(trace_line("in", summary), target)


def trace_packet(direction: Direction, encoded: str | int, target: ConnectTarget | None) -> None:
    """Logs one Engine.IO packet (the polling transport): its text, or a binary one's size."""
    summary = describe_frame(encoded) if isinstance(encoded, str) else describe_binary(encoded)
    _log(trace_line(direction, summary), target)
