"""The client side of RFC 6455 websockets, sans I/O: framing (the upgrade is in handshake.py).

Nothing here touches a socket. :func:`encode_frame` masks and frames what the client sends;
:class:`FrameParser` turns the bytes that arrive, however they are chunked, into complete
messages and control frames, and refuses anything RFC 6455 does not allow. A transport feeds
it, acts on what it returns, and writes what it is told to.

Every invalid input raises :class:`~jamsocket_rt.protocol.engineio.ProtocolError` whose
``close_code`` is the close code to fail the connection with (RFC 6455 section 7.4.1): 1002
for a protocol violation, 1007 for text that is not UTF-8 (or a close reason that is not),
1009 for a message over the size limit. No extension and no subprotocol is ever negotiated.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Callable

from attrs import frozen

from .engineio import ProtocolError
from .handshake import MAX_RESPONSE_HEAD, ClientHandshake, accept_value, host_header

__all__ = [
    "CLOSE_INVALID_DATA",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TOO_BIG",
    "MAX_CONTROL_PAYLOAD",
    "MAX_RESPONSE_HEAD",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ClientHandshake",
    "Close",
    "FrameParser",
    "Message",
    "Ping",
    "Pong",
    "accept_value",
    "close_payload",
    "encode_frame",
    "host_header",
    "is_valid_close_code",
    "mask_python",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

#: Control frames carry at most this many bytes (RFC 6455 section 5.5).
MAX_CONTROL_PAYLOAD = 125


@functools.cache
def _xor_table(key: int) -> bytes:
    return bytes(value ^ key for value in range(256))


def mask_python(mask: bytes, data: bytearray) -> None:
    """XORs ``data`` in place with the 4-byte ``mask`` repeated (RFC 6455 section 5.3).

    Four ``bytes.translate`` calls over strided slices (one per mask byte), as aiohttp's own
    fallback does: C speed per byte, where a Python loop over the bytes is 10 to 100 times
    slower.
    """
    for offset, key in enumerate(mask):
        data[offset::4] = data[offset::4].translate(_xor_table(key))


_mask_in_place: Callable[[bytes, bytearray], None]
try:  # aiohttp >= 3.11 keeps its compiled (Cython) masking function in a private module;
    # tests/test_websocket_protocol.py fails if it stops loading, and checks the fallback.
    from aiohttp._websocket.helpers import websocket_mask as _compiled_mask

    _mask_in_place = _compiled_mask
except ImportError:  # pragma: no cover - only without aiohttp's compiled helpers
    _mask_in_place = mask_python


# Header and masking key in one pack: 7-bit, 16-bit and 64-bit payload lengths.
_PACK_HEAD1 = struct.Struct("!BBI").pack
_PACK_HEAD2 = struct.Struct("!BBHI").pack
_PACK_HEAD3 = struct.Struct("!BBQI").pack
_UNPACK_LEN2 = struct.Struct("!H").unpack_from
_UNPACK_LEN3 = struct.Struct("!Q").unpack_from
# RFC 6455 wants unpredictable masks against proxy cache poisoning, not secret ones; aiohttp
# uses the same generator. A syscall per frame (os.urandom) would cost more than the framing.
_random_mask = random.Random().getrandbits


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked as RFC 6455 section 5.3 requires of clients.

    Args:
        opcode: the frame's opcode (``OP_TEXT``, ``OP_BINARY``, ``OP_PING``, ...).
        payload: the unmasked payload (text as UTF-8).

    Returns:
        The frame's bytes.
    """
    length = len(payload)
    if length < 126:
        head = _PACK_HEAD1(0x80 | opcode, 0x80 | length, _random_mask(32))
        mask = head[2:]
    elif length < 65536:
        head = _PACK_HEAD2(0x80 | opcode, 0xFE, length, _random_mask(32))
        mask = head[4:]
    else:
        head = _PACK_HEAD3(0x80 | opcode, 0xFF, length, _random_mask(32))
        mask = head[10:]
    masked = bytearray(payload)
    _mask_in_place(mask, masked)
    return head + masked


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may travel in a close frame (RFC 6455 section 7.4).

    1000-1003 and 1007-1011 are the protocol's own, 3000-4999 are for libraries and
    applications; 1004 is reserved and 1005, 1006 and 1015 only ever describe a close locally.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    """The payload of a close frame: the code (big-endian) and the reason (UTF-8).

    Args:
        code: the close code, or None for a close frame without one (then no reason either).
        reason: a short explanation.

    Returns:
        At most 125 bytes.

    Raises:
        ValueError: the code may not be sent, a reason comes without a code, or the payload
            would exceed 125 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent")
    payload = code.to_bytes(2, "big") + reason.encode()
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("a close reason of more than 123 bytes")
    return payload


# --------------------------------------------------------------------------- receiving


@frozen
class Ping:
    """A ping from the server: answer it with a pong carrying the same payload."""

    payload: bytes


@frozen
class Pong:
    """A pong from the server (unsolicited ones are allowed and mean nothing)."""

    payload: bytes


@frozen
class Close:
    """The server's close frame; ``code`` is None when it carried none (locally 1005)."""

    code: int | None
    reason: str = ""


#: What :meth:`FrameParser.next_message` returns: a text message (``str``), a binary message
#: (``bytes``), or a control frame.
Message = str | bytes | Ping | Pong | Close


class FrameParser:
    """Turns the bytes a websocket client receives into messages, incrementally.

    Hand it what arrives with :meth:`receive`, which returns the messages that are complete;
    or, one message at a time, :meth:`feed` it and call :meth:`next_message` until None. Text
    messages come back as ``str``, binary ones as ``bytes``, whole (fragments are joined);
    control frames come back as :class:`Ping`, :class:`Pong` and :class:`Close` where they
    are, even between the fragments of a message. After a :class:`Close` nothing more is
    read; after a :class:`ProtocolError` the same error is raised again.

    Incomplete frames are kept in a buffer that grows once per chunk and is copied once per
    frame, so that a large frame arriving in many small chunks costs linear time.

    Args:
        max_payload: the largest message accepted, in bytes (fragments counted together).

    Attributes:
        error: the ProtocolError found after messages that :meth:`receive` returned, or None.

    Raises:
        ValueError: ``max_payload`` is negative.
    """

    __slots__ = (
        "_buf",
        "_done",
        "_fragments",
        "_fragments_opcode",
        "_fragments_size",
        "_max_payload",
        "_need",
        "_pos",
        "_rest",
        "error",
    )

    def __init__(self, max_payload: int) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self._max_payload = max_payload
        # Unread bytes: ``_buf[_pos:]``, or ``_rest`` (an incomplete frame, to be read once it
        # holds ``_need`` bytes) when that is set.
        self._buf = b""
        self._pos = 0
        self._rest: bytearray | None = None
        self._need = 0
        self._fragments: list[bytes] | None = None  # a fragmented message being assembled
        self._fragments_size = 0
        self._fragments_opcode = 0
        self._done = False  # a Close was read, or an error raised: nothing more is read
        self.error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many received bytes have not been read into messages yet."""
        rest = self._rest
        return len(rest) if rest is not None else len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        """Adds received bytes (any chunking: a part of a frame, many frames, or nothing)."""
        if self._done:
            return
        if type(data) is not bytes:
            data = bytes(data)
        rest = self._rest
        if rest is not None:
            rest += data
        elif self._pos < len(self._buf):  # the reader stopped before the end of the last chunk
            self._rest = bytearray(memoryview(self._buf)[self._pos :]) + data
            self._buf = b""
            self._pos = self._need = 0
        else:
            self._buf = data
            self._pos = 0

    def receive(self, data: bytes) -> list[Message]:
        """Adds received bytes and returns every message and control frame now complete.

        Returns what :meth:`feed` followed by :meth:`next_message` (until None) would, but
        reads whole text frames (the usual message) on a shorter path with no call per message,
        and costs one call per chunk. If a frame is invalid after valid ones, those are
        returned and the error is kept in :attr:`error` (and raised by the next call).

        Args:
            data: the bytes, in any chunking.

        Returns:
            The messages, in order (often one, possibly none).

        Raises:
            ProtocolError: the first frame not returned yet is invalid (see
                :meth:`next_message`).
        """
        if type(data) is bytes and self._rest is None and self._pos == len(self._buf):
            buf = self._buf = data  # the usual: nothing kept from before
            pos = 0
        else:
            self.feed(data)
            buf, pos = self._buf, self._pos
        out: list[Message] = []
        append = out.append
        end = len(buf)
        plain = self._fragments is None
        limit = self._max_payload
        try:
            while True:
                # A whole text frame (7- or 16-bit length) outside a fragmented message.
                if plain and end - pos >= 4 and buf[pos] == 0x81:
                    length = buf[pos + 1]
                    start = pos + 2
                    if length == 126:
                        (length,) = _UNPACK_LEN2(buf, start)
                        start = pos + 4
                    elif length > 126:  # a 64-bit length (or a masked frame): not here
                        start = end
                    stop = start + length
                    if stop <= end and length <= limit:
                        pos = stop
                        append(buf[start:stop].decode())
                        continue
                if pos == end and self._rest is None:  # all read (the usual end)
                    # Keep no reference to the chunk: a thousand idle connections would each
                    # hold their last one.
                    self._buf = b""
                    self._pos = 0
                    return out
                self._pos = pos
                # Anything else: the general path.
                message = self.next_message()
                if message is None:
                    return out
                append(message)
                buf, pos = self._buf, self._pos
                end = len(buf)
                plain = self._fragments is None
        except UnicodeDecodeError:
            error = self._fail("a text message that is not UTF-8", CLOSE_INVALID_DATA)
            if not out:
                raise error from None
        except ProtocolError:
            if not out:
                raise
        return out

    def next_message(self) -> Message | None:
        """The next complete message or control frame, or None until more bytes arrive.

        Raises:
            ProtocolError: the bytes break RFC 6455 (``close_code`` 1002), a text message or a
                close reason is not UTF-8 (1007), or a message is over ``max_payload`` (1009).
        """
        if self.error is not None:
            raise self.error
        rest = self._rest
        if rest is not None:
            if len(rest) < self._need:
                return None
            self._buf = bytes(rest)
            self._pos = 0
            self._rest = None
        while not self._done:
            buf, pos = self._buf, self._pos
            end = len(buf)
            if end - pos < 2:
                self._keep(2)
                return None
            first = buf[pos]
            second = buf[pos + 1]
            if second & 0x80:
                raise self._fail("the server sent a masked frame")
            if first & 0x70:
                raise self._fail("a websocket frame with reserved bits set (no extension)")
            opcode = first & 0x0F
            length = second
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    self._keep(4)
                    return None
                (length,) = _UNPACK_LEN2(buf, start)
                start += 2
            elif length == 127:
                if end - pos < 10:
                    self._keep(10)
                    return None
                (length,) = _UNPACK_LEN3(buf, start)
                if length >> 63:
                    raise self._fail("a websocket frame length with its top bit set")
                start += 8
            if opcode & 0x8:
                if opcode > OP_PONG:
                    raise self._fail(f"unknown websocket opcode {opcode}")
                if not first & 0x80 or length > MAX_CONTROL_PAYLOAD:
                    raise self._fail("a fragmented or oversized websocket control frame")
            elif opcode > OP_BINARY:
                raise self._fail(f"unknown websocket opcode {opcode}")
            elif length > self._max_payload:
                raise self._fail(
                    f"a message exceeded max_payload: {length} bytes, more than "
                    f"{self._max_payload}",
                    CLOSE_TOO_BIG,
                )
            stop = start + length
            if stop > end:
                self._keep(stop - pos)
                return None
            self._pos = stop
            message = self._frame(first, opcode, buf[start:stop])
            if message is not None:
                return message
        return None

    def _keep(self, need: int) -> None:
        """Keeps the incomplete frame at ``_pos`` until ``need`` bytes of it are there."""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            self._rest = bytearray(memoryview(buf)[pos:])
            self._need = need
        self._buf = b""
        self._pos = 0

    def _frame(self, first: int, opcode: int, payload: bytes) -> Message | None:
        """Acts on one complete, valid frame: its message, or None for a fragment."""
        if opcode >= OP_CLOSE:
            if opcode == OP_PING:
                return Ping(payload)
            if opcode == OP_PONG:
                return Pong(payload)
            return self._close(payload)
        fin = first & 0x80
        if opcode == OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                raise self._fail("a continuation frame without a message to continue")
            fragments.append(payload)
            self._fragments_size += len(payload)
            if self._fragments_size > self._max_payload:
                raise self._fail(
                    f"a message exceeded max_payload: more than {self._max_payload} bytes",
                    CLOSE_TOO_BIG,
                )
            if not fin:
                return None
            self._fragments = None
            opcode = self._fragments_opcode
            payload = b"".join(fragments)
        elif self._fragments is not None:
            raise self._fail("a new message before the last one was complete")
        elif not fin:
            self._fragments = [payload]
            self._fragments_size = len(payload)
            self._fragments_opcode = opcode
            return None
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise self._fail("a text message that is not UTF-8", CLOSE_INVALID_DATA) from None

    def _close(self, payload: bytes) -> Close:
        if len(payload) == 1:
            raise self._fail("a close frame with a one-byte payload")
        code = None
        reason = ""
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if not is_valid_close_code(code):
                raise self._fail(f"a close frame with the invalid close code {code}")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                raise self._fail("a close reason that is not UTF-8", CLOSE_INVALID_DATA) from None
        self._stop()
        return Close(code, reason)

    def _fail(self, problem: str, close_code: int = CLOSE_PROTOCOL_ERROR) -> ProtocolError:
        """Records the error (raised again by later reads) and lets go of the buffer."""
        error = self.error = ProtocolError(problem, close_code)
        self._stop()
        return error

    def _stop(self) -> None:
        """Reads nothing more, and lets go of the buffer."""
        self._done = True
        self._buf = b""
        self._pos = 0
        self._fragments = None
        # An incomplete frame that never completes: receive() always takes its general path,
        # which raises the error or returns nothing.
        self._rest = bytearray()
        self._need = 1
