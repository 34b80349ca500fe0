"""The opening handshake of an RFC 6455 client websocket, sans I/O (section 4.1).

:class:`ClientHandshake` builds the HTTP/1.1 upgrade request and checks the server's answer,
fed in any chunking: 101 with the right ``Sec-WebSocket-Accept`` opens the websocket, 410 Gone
is the proxy refusing the token (:class:`~jamsocket_rt.TokenExpired`), any other status a
ConnectionError, and an answer that is not HTTP a ProtocolError. No extension and no
subprotocol is ever negotiated.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping

from .._errors import TokenExpired
from .engineio import ProtocolError

__all__ = ["MAX_RESPONSE_HEAD", "ClientHandshake", "accept_value", "host_header"]

#: The longest HTTP response head accepted in answer to the upgrade request, in bytes.
MAX_RESPONSE_HEAD = 64 * 1024

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def host_header(host: str, port: int | None) -> str:
    """The ``Host`` header for ``host`` (an IPv6 literal in brackets) and an explicit port."""
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode() + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


_RESERVED = frozenset({"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"})
_REPLACEABLE = ("host", "user-agent")


class ClientHandshake:
    """The client's side of the opening handshake (RFC 6455 section 4.1).

    Send :attr:`request`, then feed the server's answer to :meth:`receive_data` until it
    returns the bytes that followed the response head.

    Args:
        host: the ``Host`` header's value (see :func:`host_header`).
        resource: the request target: path and query, already percent-encoded.
        where: how error messages name the server (never the resource: it may hold a token).
        headers: extra request headers. ``Host`` and ``User-Agent`` replace the defaults; the
            websocket's own (``Upgrade``, ``Connection``, ``Sec-WebSocket-Key`` and
            ``-Version``) are ignored.
        key: the ``Sec-WebSocket-Key`` (default: 16 random bytes, base64-encoded).

    Attributes:
        request: the request to send, head only (an upgrade has no body).

    Raises:
        ValueError: a header name or value holds a line break or NUL, or a name a colon
            (it would inject headers).
    """

    __slots__ = ("_head", "_key", "_where", "request")

    def __init__(
        self,
        *,
        host: str,
        resource: str,
        where: str,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> None:
        self._key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        self._where = where
        self._head = bytearray()
        lines = [
            f"GET {resource} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key}",
            "Sec-WebSocket-Version: 13",
            "User-Agent: jamsocket_rt",
        ]
        for name, value in (headers or {}).items():
            if any(c in name or c in value for c in "\r\n\0") or ":" in name:
                raise ValueError(f"header {name!r}: a name or value with a line break or colon")
            lower = name.lower()
            if lower in _RESERVED:
                continue
            if lower in _REPLACEABLE:
                lines = [line for line in lines if not line.lower().startswith(lower + ":")]
            lines.append(f"{name}: {value}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def receive_data(self, data: bytes) -> bytes | None:
        """Feeds bytes of the server's answer.

        Returns:
            None while the response head is incomplete; once it is complete and accepts the
            upgrade, the bytes that followed it (the first websocket frames, often empty).

        Raises:
            TokenExpired: the answer is 410 Gone (Plane's proxy: the token is unknown or
                expired, or its backend has ended).
            ConnectionError: another status than 101 (the message names ``where`` only).
            ProtocolError: the answer is not HTTP, its head is endless, or it is a 101 that
                breaks RFC 6455.
        """
        head = self._head
        searched = max(0, len(head) - 3)
        head += data
        end = head.find(b"\r\n\r\n", searched)
        if end < 0:
            if len(head) > MAX_RESPONSE_HEAD:
                raise ProtocolError(f"{self._where} sent an endless HTTP head")
            return None
        if end > MAX_RESPONSE_HEAD:
            raise ProtocolError(f"{self._where} sent an endless HTTP head")
        tail = bytes(head[end + 4 :])
        self.check_response(bytes(head[:end]))
        self._head = bytearray()
        return tail

    def check_response(self, head: bytes) -> None:
        """Raises unless ``head`` (the response head, without its blank line) accepts the
        upgrade; see :meth:`receive_data` for what is raised."""
        where = self._where
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        code = status_line[1] if len(status_line) > 1 else ""
        if (
            not status_line[0].startswith("HTTP/")
            or len(code) != 3
            or not (code.isdigit() and code.isascii())
        ):
            raise ProtocolError(f"{where} did not answer with HTTP: {lines[0][:40]!r}")
        status = int(code)
        reason = status_line[2] if len(status_line) > 2 else ""
        if status == 410:
            raise TokenExpired(
                f"{where} answered 410 Gone: the token is unknown or expired, "
                "or its backend has ended"
            )
        if status != 101:
            raise ConnectionError(
                f"{where} refused the websocket: HTTP {status} {reason[:80]}".rstrip()
            )
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket":
            raise ProtocolError(f"{where} answered 101 without 'Upgrade: websocket'")
        if "upgrade" not in {t.strip().lower() for t in headers.get("connection", "").split(",")}:
            raise ProtocolError(f"{where} answered 101 without 'Connection: upgrade'")
        if headers.get("sec-websocket-accept") != accept_value(self._key):
            raise ProtocolError(f"{where} answered 101 with a wrong Sec-WebSocket-Accept")
        if headers.get("sec-websocket-extensions"):
            raise ProtocolError(f"{where} chose a websocket extension that was not offered")
        if headers.get("sec-websocket-protocol"):
            raise ProtocolError(f"{where} chose a websocket subprotocol that was not offered")
