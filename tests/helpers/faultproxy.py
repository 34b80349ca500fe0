"""A TCP proxy of the tests' own, put between a client and a server on 127.0.0.1 to break things.

::

    async with FaultProxy(server_port) as fault:
        url = fault.rewrite(response.url)  # the same URL, through the proxy
        ...
        fault.reset_all()        # RST every connection, both sides (a cut)
        fault.close_all()        # or FIN them (a server or a middlebox that hangs up politely)
        fault.refuse(2.0)        # and refuse new ones for 2 s (connection refused)
        fault.blackhole()        # or: forward nothing, answer nothing, keep sockets open
        await fault.heal()       # normal service again

It forwards bytes both ways unchanged (with flow control), counts connections (``accepted``,
``open_connections``), and can record every byte it forwarded (``record=True``), which the
security tests search for credentials. It runs in the test's event loop; nothing is mocked:
the client and the server see real sockets, real resets and real refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import jamsocket_rt as jrt

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


def _reset(transport: asyncio.Transport | None) -> None:
    """Closes a connection with a TCP reset (as a crashed middlebox or a cut path would)."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the server: forwards what the server says to the client."""

    def __init__(self, pair: _Pair) -> None:
        self._pair = pair

    def data_received(self, data: bytes) -> None:
        self._pair.from_server(data)

    def eof_received(self) -> bool | None:
        client = self._pair.client
        if self._pair.blackholed or client is None or client.is_closing():
            return True
        if client.can_write_eof():
            client.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._pair.upstream_lost()

    def pause_writing(self) -> None:
        if self._pair.client is not None:
            self._pair.client.pause_reading()

    def resume_writing(self) -> None:
        if self._pair.client is not None and not self._pair.client.is_closing():
            self._pair.client.resume_reading()


class _Pair(asyncio.Protocol):
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self._early = bytearray()  # client bytes that came before the upstream connection
        self._client_eof = False
        self.client_done = False  # the client closed its side (EOF, or the whole connection)
        self.blackholed = proxy.blackholing
        self._opening: asyncio.Task[None] | None = None

    # -- the client side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client = transport
        self._proxy._opened(self)
        if not self.blackholed:
            self._opening = asyncio.get_running_loop().create_task(self._open_upstream())

    async def _open_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_connection(
                lambda: _Upstream(self), self._proxy.upstream_host, self._proxy.upstream_port
            )
        except OSError:
            _reset(self.client)  # the server refused: so does the proxy
            return
        if self.client is None or self.client.is_closing() or self.blackholed:
            upstream.abort()
            return
        self.upstream = upstream
        if self._early:
            upstream.write(bytes(self._early))
            self._early.clear()
        if self._client_eof and upstream.can_write_eof():
            upstream.write_eof()

    def data_received(self, data: bytes) -> None:
        if self.blackholed:
            return  # swallowed, as a path that drops every packet would
        self._proxy._record(data)
        if self.upstream is None:
            self._early += data
        else:
            self.upstream.write(data)

    def eof_received(self) -> bool | None:
        self.client_done = True
        if self.blackholed:
            return True
        if self.upstream is not None:
            if self.upstream.can_write_eof():
                self.upstream.write_eof()
        else:
            self._client_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._proxy._forget(self)
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.resume_reading()

    # -- the server side ---------------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        if self.blackholed or self.client is None or self.client.is_closing():
            return
        self._proxy._record(data)
        self.client.write(data)

    def upstream_lost(self) -> None:
        if not self.blackholed and self.client is not None and not self.client.is_closing():
            self.client.close()

    # -- faults ------------------------------------------------------------------------------

    def reset(self) -> None:
        _reset(self.upstream)
        _reset(self.client)

    def close(self) -> None:
        for transport in (self.upstream, self.client):
            if transport is not None and not transport.is_closing():
                transport.close()

    def blackhole(self) -> None:
        self.blackholed = True


class FaultProxy:
    """Forwards ``127.0.0.1:{port}`` to ``upstream_host:upstream_port``, breaking it on demand.

    Args:
        upstream_port: the server's port.
        upstream_host: the server's address.
        record: keep a copy of every byte forwarded, both ways, in :attr:`recorded`.
    """

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", *, record: bool = False
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0
        self.blackholing = False
        self.recorded = bytearray() if record else None
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None
        self._relisten: asyncio.TimerHandle | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts listening on a free port (kept for the proxy's whole life)."""
        await self._listen()

    async def _listen(self) -> None:
        if self._server is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Pair(self), "127.0.0.1", self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stops listening and resets every connection."""
        self._closed = True
        if self._relisten is not None:
            self._relisten.cancel()
        self._stop_listening()
        self.reset_all()
        # One loop iteration, not a guess at a duration: abort() has scheduled each
        # transport's connection_lost with call_soon, and this lets them run.
        await asyncio.sleep(0)

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rewrite(self, url: str) -> str:
        """``url`` with its scheme, host and port replaced by the proxy's (path kept)."""
        parts = urlsplit(url)
        return urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, ""))

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """Client connections the client still holds open (half-closed ones do not count)."""
        return sum(1 for pair in self._pairs if not pair.client_done)

    def _opened(self, pair: _Pair) -> None:
        self.accepted += 1
        self._pairs.add(pair)

    def _forget(self, pair: _Pair) -> None:
        self._pairs.discard(pair)

    def _record(self, data: bytes) -> None:
        if self.recorded is not None:
            self.recorded += data

    # -- faults ------------------------------------------------------------------------------

    def reset_all(self) -> int:
        """Resets (RST) every open connection, on both sides; returns how many."""
        pairs = list(self._pairs)
        for pair in pairs:
            pair.reset()
        return len(pairs)

    def close_all(self) -> int:
        """Closes every open connection politely (FIN), on both sides; returns how many."""
        pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        return len(pairs)

    def refuse(self, seconds: float | None = None) -> None:
        """Stops listening: new connections are refused (for ``seconds``, else until heal()).

        Open connections are left alone (combine with :meth:`reset_all` for a full cut).
        """
        self._stop_listening()
        if seconds is not None:
            loop = asyncio.get_running_loop()
            self._relisten = loop.call_later(seconds, lambda: loop.create_task(self._listen()))

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # the listening socket closes now; accepted connections stay

    def blackhole(self) -> None:
        """Forwards nothing either way from now on, and answers nothing, but closes nothing.

        Open connections go silent; new ones are accepted and then ignored (the way a path
        that drops every packet looks to a client: no reset, no refusal, no answer).
        """
        self.blackholing = True
        for pair in self._pairs:
            pair.blackhole()

    async def heal(self) -> None:
        """Normal service again: listening and forwarding.

        Connections that were black-holed have lost bytes in both directions and cannot go on:
        they are reset.
        """
        self.blackholing = False
        for pair in [p for p in self._pairs if p.blackholed]:
            pair.reset()
        if self._relisten is not None:
            self._relisten.cancel()
            self._relisten = None
        await self._listen()


def port_of(url: str) -> int:
    """The port of an ``http://host:port/...`` URL."""
    port = urlsplit(url).port
    assert port is not None, url
    return port


def through(
    response: jrt.ConnectResponse,
    *,
    url: FaultProxy | None = None,
    status: FaultProxy | None = None,
) -> jrt.ConnectResponse:
    """``response`` with its ``url`` and/or ``status_url`` going through fault proxies."""
    data = response.to_dict()
    if url is not None:
        data["url"] = url.rewrite(response.url)
    if status is not None:
        data["status_url"] = status.rewrite(response.status_url)
    return jrt.ConnectResponse.from_dict(data)
