"""The token proxy: ``/{token}/...`` in front, the backend's ``/...`` behind.

A raw asyncio proxy, built for a low cost per message: it reads and rewrites the request head
(and the response head), then splices bytes both ways with protocol callbacks, so a WebSocket
frame costs one ``data_received`` and one ``write``, with transport flow control in between.

Each non-upgrade HTTP request is sent to the backend with ``Connection: close`` and the client
connection is closed after the response: every request is then parsed here (a keep-alive
client simply reconnects), which is what lets the proxy strip forged ``x-verified-*`` headers
without parsing message bodies. A client that pipelines a second request in the same packet
would reach a backend that ignores ``Connection: close``; no Socket.IO client does that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

_log = logging.getLogger("jamsocket_rt.dev")

#: A request or response head larger than this is refused (request) or passed on as is.
MAX_HEAD_BYTES = 64 * 1024
_END_OF_HEAD = b"\r\n\r\n"
_HOP_BY_HOP = (b"connection", b"keep-alive", b"proxy-connection")
_VERIFIED_PREFIX = b"x-verified-"


class ProxyTarget(Protocol):
    """What a token resolves to, as far as the proxy is concerned."""

    @property
    def backend_id(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def request_headers(self) -> bytes:
        """Header lines (each ending with CRLF) to add to every forwarded request."""
        ...

    async def wait_ready(self) -> bool:
        """Waits until the backend is ready (True) or will never be (False)."""
        ...

    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...


Resolver = Callable[[str], "ProxyTarget | None"]


class _BadRequest(ValueError):
    pass


class _Request:
    """A parsed request head, ready to be written toward the backend."""

    __slots__ = ("header_lines", "method", "path", "token", "upgrade", "version")

    def __init__(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[1].startswith(b"/") or not parts[2].startswith(b"HTTP/"):
            raise _BadRequest("malformed request line")
        self.method, target, self.version = parts
        # "/TOKEN/rest?q" -> "TOKEN", "/rest?q"; "/TOKEN?q" -> "TOKEN", "/?q".
        rest = target[1:]
        end = len(rest)
        for separator in (b"/", b"?"):
            found = rest.find(separator)
            if found >= 0:
                end = min(end, found)
        self.token = rest[:end].decode("latin-1")
        path = rest[end:]
        self.path = path if path.startswith(b"/") else b"/" + path

        kept: list[bytes] = []
        connection_upgrade = has_upgrade = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[:1] in b" \t" or name[-1:] in b" \t":
                raise _BadRequest("malformed header line")
            lower = name.lower()
            if lower.startswith(_VERIFIED_PREFIX):
                continue  # only the proxy may vouch for a user
            if lower == b"connection":
                connection_upgrade |= b"upgrade" in value.lower()
            elif lower == b"upgrade":
                has_upgrade = True
            kept.append(line)
        self.upgrade = connection_upgrade and has_upgrade
        if not self.upgrade:
            kept = [line for line in kept if line.partition(b":")[0].lower() not in _HOP_BY_HOP]
        self.header_lines = kept

    def rewrite(self, extra_headers: bytes) -> bytes:
        """The head to send to the backend: token gone, verified headers added."""
        parts = [self.method, b" ", self.path, b" ", self.version, b"\r\n"]
        for line in self.header_lines:
            parts += (line, b"\r\n")
        parts.append(extra_headers)
        if not self.upgrade:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)


def _rewrite_response_head(head: bytes, backend_header: bytes, keep_connection: bool) -> bytes:
    """Adds ``x-plane-backend-id``; forces ``Connection: close`` unless keep_connection."""
    body = head[: -len(_END_OF_HEAD)]
    if not keep_connection:
        lines = body.split(b"\r\n")
        body = b"\r\n".join(
            [lines[0]]
            + [line for line in lines[1:] if line.partition(b":")[0].lower() not in _HOP_BY_HOP]
        )
        body += b"\r\nConnection: close"
    return body + b"\r\n" + backend_header + _END_OF_HEAD


def _status_code(head: bytes) -> int:
    # "HTTP/1.1 101 Switching Protocols"
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return -1


def _error_response(status: int, reason: str, message: str) -> bytes:
    body = (message + "\n").encode("utf-8")
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        # A browser client must be able to read the 410 to know its token is gone.
        "Access-Control-Allow-Origin: *\r\n"
        "\r\n"
    ).encode("ascii") + body


class _ClientSide(asyncio.Protocol):
    """The connection from a client: head parsing, routing, then splicing to the backend."""

    def __init__(self, proxy: TokenProxy) -> None:
        self._proxy = proxy
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._upstream: asyncio.Transport | None = None
        self._routing: asyncio.Task[None] | None = None
        self._target: ProxyTarget | None = None
        self._closed = False
        self._eof = False  # the client half-closed before the backend was connected

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._proxy._clients.add(self)

    def data_received(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)  # the hot path
            return
        if self._routing is not None:
            self._head += data  # arrived before reading was paused: sent after the head
            return
        assert self._transport is not None
        if self._transport.is_closing():
            return  # already answered with an error
        searched = max(0, len(self._head) - len(_END_OF_HEAD) + 1)
        self._head += data
        end = self._head.find(_END_OF_HEAD, searched)
        if end < 0 or end > MAX_HEAD_BYTES:
            if len(self._head) > MAX_HEAD_BYTES:
                self._reply(431, "Request Header Fields Too Large", "request head too large")
            return
        try:
            request = _Request(bytes(self._head[:end]))
        except _BadRequest as exc:
            self._reply(400, "Bad Request", str(exc))
            return
        del self._head[: end + len(_END_OF_HEAD)]
        # Nothing more is read until the backend is there to take it.
        self._transport.pause_reading()
        self._routing = asyncio.create_task(self._route(request))

    def eof_received(self) -> bool | None:
        # A client may half-close after its request and still wait for the answer.
        if self._upstream is not None:
            if self._upstream.can_write_eof():
                self._upstream.write_eof()
            return True
        if self._routing is not None:
            self._eof = True  # passed on once connected
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._proxy._clients.discard(self)
        if self._routing is not None and not self._routing.done():
            self._routing.cancel()
        if self._upstream is not None:
            self._upstream.close()
        if self._target is not None:
            self._target.connection_closed()
            self._target = None

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    # -- routing -----------------------------------------------------------------------------

    async def _route(self, request: _Request) -> None:
        try:
            await self._connect(request)
        except Exception:  # noqa: BLE001 - a task boundary: answer, never leak
            _log.exception("proxy: failed to route a request")
            self._reply(502, "Bad Gateway", "the dev server's proxy failed")

    async def _connect(self, request: _Request) -> None:
        target = self._proxy.resolve(request.token)
        if target is None:
            self._reply(410, "Gone", "unknown, expired or terminated token")
            return
        target.connection_opened()
        self._target = target
        if not await target.wait_ready():
            self._reply(410, "Gone", "the session backend has terminated")
            return
        loop = asyncio.get_running_loop()
        backend_header = b"x-plane-backend-id: " + target.backend_id.encode("ascii")
        try:
            upstream, _ = await loop.create_connection(
                lambda: _BackendSide(self, backend_header, request.upgrade),
                self._proxy.upstream_host,
                target.port,
            )
        except OSError:
            self._reply(502, "Bad Gateway", "the session backend refused the connection")
            return
        if self._closed:
            upstream.close()
            return
        upstream.write(request.rewrite(target.request_headers) + bytes(self._head))
        self._head = bytearray()
        self._upstream = upstream
        if self._eof and upstream.can_write_eof():
            upstream.write_eof()
        assert self._transport is not None
        self._transport.resume_reading()

    def _reply(self, status: int, reason: str, message: str) -> None:
        """Answers the client itself (nothing was forwarded) and closes the connection."""
        transport = self._transport
        if transport is None or self._closed:
            return
        transport.write(_error_response(status, reason, message))
        transport.close()

    # -- for _BackendSide and the proxy ------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    @property
    def target(self) -> ProxyTarget | None:
        """What the request's token resolved to, once routed."""
        return self._target

    def abort(self) -> None:
        if self._upstream is not None:
            self._upstream.abort()
        if self._transport is not None:
            self._transport.abort()


class _BackendSide(asyncio.Protocol):
    """The connection to a backend: response head rewriting, then splicing to the client."""

    def __init__(self, client: _ClientSide, backend_header: bytes, upgrade: bool) -> None:
        self._client = client.transport
        self._backend_header = backend_header
        self._upgrade = upgrade
        self._head: bytearray | None = bytearray()  # None once the response head is sent

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self._client.write(data)  # the hot path
            return
        self._head += data
        self._forward_heads()

    def _forward_heads(self) -> None:
        head = self._head
        assert head is not None
        while True:
            end = head.find(_END_OF_HEAD)
            if end < 0:
                if len(head) > MAX_HEAD_BYTES:  # not worth rewriting: pass it on untouched
                    self._client.write(bytes(head))
                    self._head = None
                return
            cut = end + len(_END_OF_HEAD)
            response_head = bytes(head[:cut])
            del head[:cut]
            status = _status_code(response_head)
            if 100 <= status < 200 and status != 101:
                self._client.write(response_head)  # e.g. 100 Continue: the real head follows
                continue
            keep = self._upgrade and status == 101
            self._client.write(_rewrite_response_head(response_head, self._backend_header, keep))
            if head:
                self._client.write(bytes(head))
            self._head = None
            return

    def eof_received(self) -> bool | None:
        if self._head:
            self._client.write(bytes(self._head))
        # The backend is done: so is the client's connection (close() sends what is buffered).
        self._client.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.close()

    def pause_writing(self) -> None:
        self._client.pause_reading()

    def resume_writing(self) -> None:
        self._client.resume_reading()


class TokenProxy:
    """Serves ``http://{host}:{port}/{token}/...`` and forwards to the token's backend.

    Unknown or terminated tokens get 410 Gone; requests for a backend still starting are held
    until it is ready (410 if it terminates instead). Incoming ``x-verified-*`` headers are
    dropped and the target's own are added; responses get ``x-plane-backend-id``.
    """

    def __init__(
        self,
        resolve: Resolver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream_host: str = "127.0.0.1",
    ) -> None:
        self.resolve = resolve
        self.upstream_host = upstream_host
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: set[_ClientSide] = set()

    async def start(self) -> None:
        """Starts listening.

        Raises:
            OSError: the port cannot be bound.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientSide(self), self._host, self._port, backlog=1024
        )
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, when 0 was asked for)."""
        return self._port

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def drop(self, target: ProxyTarget) -> int:
        """Aborts every connection routed to ``target`` (e.g. a grant whose token expired).

        Returns:
            How many connections were dropped.
        """
        dropped = [client for client in self._clients if client.target is target]
        for client in dropped:
            client.abort()
        return len(dropped)

    async def close(self) -> None:
        """Stops listening and drops every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for client in list(self._clients):
            client.abort()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5.0)
