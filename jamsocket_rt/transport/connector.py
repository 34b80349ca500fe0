"""Opening connections: DNS and TLS caches shared by every transport of a process.

A :class:`Connector` owns what connections to the same hosts share: resolved host names (kept
:data:`DNS_TTL` seconds, one lookup per name at a time: a thousand sessions to one host resolve
it once) and TLS contexts (loading the CA bundle takes milliseconds). Transports use
:func:`default_connector` unless given their own (which isolates its caches).

"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl as _ssl
import time
from collections.abc import Callable
from typing import Any

import aiohappyeyeballs

from ..protocol.engineio import ProtocolError
from ..protocol.proxy import Proxy, TunnelHandshake

__all__ = [
    "DNS_TTL",
    "HAPPY_EYEBALLS_DELAY",
    "AddrInfo",
    "Connector",
    "default_connector",
]

#: How long a resolved host name is reused, in seconds.
DNS_TTL = 10.0

#: Seconds before the next address of a name is tried while earlier attempts still wait
#: (RFC 8305 section 5 recommends 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25

#: One address to connect to: (family, type, proto, sockaddr), as from getaddrinfo().
AddrInfo = tuple[int, int, int, Any]

# Expired names are swept once the cache holds this many (it never grows without end).
_SWEEP_AT = 256


class _Lookup:
    """One getaddrinfo() in flight and how many callers wait for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[list[AddrInfo]]) -> None:
        self.task = task
        self.waiters = 0


@functools.lru_cache(maxsize=256)
def _literal_family(host: str) -> int:
    """AF_INET or AF_INET6 for an IP literal, 0 for a name (remembered: every connect asks)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return 0
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


class Connector:
    """Opens connections to hosts, sharing name lookups and TLS contexts between them.

    Args:
        dns_ttl: seconds a resolved name is reused (0: resolve for every connection).
        happy_eyeballs_delay: seconds before the next address of a name is tried (RFC 8305).
        clock: the monotonic clock that ages the names.

    Attributes:
        dns: the DNS cache: (host, port) -> (expiry on ``clock``, addresses).
    """

    __slots__ = ("_clock", "_contexts", "_lookups", "dns", "dns_ttl", "happy_eyeballs_delay")

    def __init__(
        self,
        *,
        dns_ttl: float = DNS_TTL,
        clock: Callable[[], float] = time.monotonic,
        happy_eyeballs_delay: float = HAPPY_EYEBALLS_DELAY,
    ) -> None:
        self.dns_ttl = dns_ttl
        self.happy_eyeballs_delay = happy_eyeballs_delay
        self._clock = clock
        self.dns: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}
        self._contexts: dict[bool, _ssl.SSLContext] = {}
        # Lookups in flight, per event loop (their tasks belong to one).
        self._lookups: dict[tuple[asyncio.AbstractEventLoop, str, int], _Lookup] = {}

    def ssl_context(self, value: _ssl.SSLContext | bool | None) -> _ssl.SSLContext:
        """The TLS context for ``ConnectTarget.ssl``.

        Args:
            value: an SSLContext (returned as it is); None or True to verify certificates and
                host names; False to verify neither.

        Returns:
            The context, built once per connector for each of verify / do not verify.
        """
        if isinstance(value, _ssl.SSLContext):
            return value
        verify = value is None or value is True
        context = self._contexts.get(verify)
        if context is None:
            context = _ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = _ssl.CERT_NONE
            self._contexts[verify] = context
        return context

    async def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """The addresses of ``host`` (TCP), in the resolver's order of preference.

        IP literals are returned at once; names come from the cache or from one lookup shared
        by every caller that asks while it runs. A caller that is cancelled stops waiting
        without disturbing the others; the lookup is cancelled only when nobody waits for it.

        Raises:
            OSError: the name cannot be resolved (socket.gaierror) or has no address.
        """
        family = _literal_family(host)
        if family == socket.AF_INET:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port))]
        if family == socket.AF_INET6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port, 0, 0))]
        cached = self.dns.get((host, port))
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        loop = asyncio.get_running_loop()
        key = (loop, host, port)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = _Lookup(loop.create_task(self._lookup(host, port)))
            lookup.task.add_done_callback(lambda task: self._forget(key, task))
        lookup.waiters += 1
        try:
            # Shielded: cancelling this caller must not cancel the lookup the others await.
            return await asyncio.shield(lookup.task)
        except asyncio.CancelledError:
            if lookup.waiters == 1 and not lookup.task.done():
                # The last one waiting: nobody needs the answer any more. A caller that comes
                # now starts a lookup of its own rather than join a cancelled one.
                self._forget(key, lookup.task)
                lookup.task.cancel()
            raise
        finally:
            lookup.waiters -= 1

    async def _lookup(self, host: str, port: int) -> list[AddrInfo]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found: list[AddrInfo] = [
            (family, kind, proto, address) for family, kind, proto, _, address in infos
        ]
        if not found:
            raise OSError(f"{host} has no address")
        now = self._clock()
        if len(self.dns) >= _SWEEP_AT:  # (in place: the dict is shared by reference)
            for name in [name for name, entry in self.dns.items() if entry[0] <= now]:
                del self.dns[name]
        self.dns[(host, port)] = (now + self.dns_ttl, found)
        return found

    def _forget(
        self, key: tuple[asyncio.AbstractEventLoop, str, int], task: asyncio.Task[Any]
    ) -> None:
        lookup = self._lookups.get(key)
        if lookup is not None and lookup.task is task:
            del self._lookups[key]
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the waiters (if any) raise it themselves

    async def connect(
        self,
        protocol: asyncio.BaseProtocol,
        host: str,
        port: int,
        *,
        ssl: _ssl.SSLContext | None = None,
        proxy: Proxy | None = None,
    ) -> asyncio.Transport:
        """Connects ``protocol`` to ``host``: its one address, or the first of several to
        accept, tried as RFC 8305 says (happy eyeballs: the address families interleaved, a new
        attempt every ``happy_eyeballs_delay`` seconds while the earlier ones still wait).
        Through ``proxy``, a CONNECT tunnel to ``host:port`` carries the connection (and its
        TLS: the proxy sees the host and port only).

        Args:
            protocol: the connection's asyncio protocol.
            host: a host name or IP literal (certificates are checked against it).
            port: the TCP port.
            ssl: the TLS context, or None for plain TCP.
            proxy: the HTTP proxy to tunnel through, or None to connect directly.

        Returns:
            The asyncio transport (also given to ``protocol.connection_made``).

        Raises:
            OSError: the name cannot be resolved, or no address accepted (with several, the
                message says what each one answered); TLS failures are OSErrors too
                (ssl.SSLError).
        """
        loop = asyncio.get_running_loop()
        if proxy is not None:
            sock = await self._tunnel(proxy, host, port)
            try:
                transport, _ = await loop.create_connection(
                    lambda: protocol, sock=sock, ssl=ssl, server_hostname=host if ssl else None
                )
            except BaseException:
                sock.close()
                raise
            return transport
        addresses = await self.resolve(host, port)
        if len(addresses) == 1:
            # One address (an IP literal, most often): the loop connects without a lookup
            # (uvloop in C, end to end).
            family, _, _, address = addresses[0]
            transport, _ = await loop.create_connection(
                lambda: protocol,
                host=address[0],
                port=address[1],
                family=family,
                ssl=ssl,
                server_hostname=host if ssl is not None else None,
            )
            return transport
        try:
            sock = await self._socket_to(addresses)
        except OSError as exc:
            # aiohappyeyeballs gives one error when every address answered the same, else
            # "Multiple exceptions: a, b": say how many were tried, then what they answered.
            raise OSError(exc.errno, f"{len(addresses)} addresses tried; {exc}") from exc
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, sock=sock, ssl=ssl, server_hostname=host if ssl else None
            )
        except BaseException:
            sock.close()
            raise
        return transport

    async def _socket_to(self, addresses: list[AddrInfo]) -> socket.socket:
        """A socket connected to the first of ``addresses`` to accept, as RFC 8305 says:
        families interleaved, a new attempt every ``happy_eyeballs_delay`` seconds while the
        earlier ones still wait (an address that never answers costs that delay, not the
        connect timeout)."""
        return await aiohappyeyeballs.start_connection(
            [(family, kind, proto, "", address) for family, kind, proto, address in addresses],
            happy_eyeballs_delay=self.happy_eyeballs_delay,
            interleave=1,
        )

    async def _tunnel(self, proxy: Proxy, host: str, port: int) -> socket.socket:
        """A socket connected to ``proxy`` with a CONNECT tunnel to ``host:port`` open.

        Raises:
            OSError: the proxy cannot be reached (named), refused the tunnel
                (:class:`~..protocol.proxy.TunnelRefused`, with its status) or answered
                something else than HTTP.
        """
        loop = asyncio.get_running_loop()
        try:
            sock = await self._socket_to(await self.resolve(proxy.host, proxy.port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot reach the proxy {proxy.where}: {exc}") from exc
        try:
            handshake = TunnelHandshake(proxy, host, port)
            await loop.sock_sendall(sock, handshake.request)
            while (tail := handshake.receive_data(await loop.sock_recv(sock, 4096))) is None:
                pass
            if tail:
                raise ProtocolError(f"the proxy {proxy.where} sent data before the tunnel was used")
        except BaseException:
            sock.close()
            raise
        return sock

    def clear(self) -> None:
        """Forgets the resolved names and the TLS contexts built so far."""
        self.dns.clear()
        self._contexts.clear()


_default = Connector()


def default_connector() -> Connector:
    """The process-wide connector that transports use unless given one of their own."""
    return _default
