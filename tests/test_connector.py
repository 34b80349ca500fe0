"""The Connector: shared name lookups (and their cancellation), TLS contexts, connecting.

Lookups go through the running loop's getaddrinfo, which some tests wrap to count or hold the
calls (the answers are the resolver's own); connections go to real servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.connector import AddrInfo, Connector, default_connector
from jamsocket_rt.transport.websocket import WebSocketTransport
from tests.helpers.transport_peers import TOKEN_PATH, Recorder, python_peer


class Lookups:
    """Wraps the running loop's getaddrinfo: counts the calls, and holds them while ``gate``
    is clear (each held call sets ``started`` first)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.hosts: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self._resolve = loop.getaddrinfo

    async def getaddrinfo(self, host: Any, port: Any, **kwargs: Any) -> Any:
        self.hosts.append(host)
        self.started.set()
        await self.gate.wait()
        return await self._resolve(host, port, **kwargs)


@pytest.fixture
async def lookups() -> AsyncIterator[Lookups]:
    loop = asyncio.get_running_loop()
    counting = Lookups(loop)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "getaddrinfo", counting.getaddrinfo)
        yield counting


@contextlib.contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        yield reported
    finally:
        loop.set_exception_handler(None)


def ports(infos: list[AddrInfo]) -> set[int]:
    return {int(info[3][1]) for info in infos}


# --------------------------------------------------------------------------- name lookups


async def test_a_cancelled_waiter_does_not_cancel_the_others(lookups: Lookups) -> None:
    connector = Connector()
    lookups.gate.clear()
    first = asyncio.ensure_future(connector.resolve("localhost", 8001))  # starts the lookup
    second = asyncio.ensure_future(connector.resolve("localhost", 8001))  # joins it
    await lookups.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    lookups.gate.set()
    addresses = await second
    assert addresses
    assert ports(addresses) == {8001}
    assert lookups.hosts == ["localhost"]  # one lookup, shared
    assert await connector.resolve("localhost", 8001) == addresses  # cached
    assert lookups.hosts == ["localhost"]


async def test_a_lookup_nobody_waits_for_is_cancelled_and_a_new_caller_starts_afresh(
    lookups: Lookups,
) -> None:
    connector = Connector()
    lookups.gate.clear()
    waiters = [asyncio.ensure_future(connector.resolve("localhost", 8002)) for _ in range(2)]
    await lookups.started.wait()
    for waiter in waiters:
        waiter.cancel()
    for waiter in waiters:
        with pytest.raises(asyncio.CancelledError):
            await waiter
    lookups.gate.set()
    assert ports(await connector.resolve("localhost", 8002)) == {8002}
    assert lookups.hosts == ["localhost", "localhost"]


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_kept(lookups: Lookups) -> None:
    connector = Connector()
    with loop_errors() as reported:
        lookups.gate.clear()
        waiters = [asyncio.ensure_future(connector.resolve("no-such-host.invalid", 80))]
        waiters.append(asyncio.ensure_future(connector.resolve("no-such-host.invalid", 80)))
        await lookups.started.wait()
        lookups.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(result, OSError) for result in results), results
        with pytest.raises(OSError):
            await connector.resolve("no-such-host.invalid", 80)
        assert lookups.hosts == ["no-such-host.invalid"] * 2
    assert reported == []


async def test_ip_literals_are_never_looked_up(lookups: Lookups) -> None:
    connector = Connector()
    assert await connector.resolve("127.0.0.1", 80) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.1", 80))
    ]
    assert (await connector.resolve("::1", 80))[0][0] == socket.AF_INET6
    assert lookups.hosts == []


async def test_names_are_kept_for_the_ttl(lookups: Lookups) -> None:
    keeping, forgetting = Connector(), Connector(dns_ttl=0)
    for connector in (keeping, forgetting, keeping, forgetting):
        await connector.resolve("localhost", 8003)
    assert lookups.hosts == ["localhost"] * 3  # once for keeping, twice for forgetting
    keeping.clear()
    await keeping.resolve("localhost", 8003)
    assert len(lookups.hosts) == 4


async def test_the_dns_cache_expires_and_sweeps(lookups: Lookups) -> None:
    now = [100.0]
    connector = Connector(dns_ttl=10.0, clock=lambda: now[0])
    cache = connector.dns
    await connector.resolve("localhost", 8004)
    now[0] = 109.9
    await connector.resolve("localhost", 8004)
    assert lookups.hosts == ["localhost"]
    now[0] = 110.0  # expired
    await connector.resolve("localhost", 8004)
    assert lookups.hosts == ["localhost"] * 2
    for port in range(300):  # a sweep drops what expired, never what is fresh
        await connector.resolve("localhost", 9000 + port)
    assert len(cache) == 301
    now[0] = 200.0
    await connector.resolve("localhost", 8005)
    assert list(cache) == [("localhost", 8005)]
    assert connector.dns is cache  # swept in place: whoever holds it sees the same cache


# --------------------------------------------------------------------------- TLS contexts


def test_tls_contexts_are_built_once_per_connector() -> None:
    connector = Connector()
    verify = connector.ssl_context(None)
    assert connector.ssl_context(True) is verify
    assert verify.verify_mode == ssl.CERT_REQUIRED
    assert verify.check_hostname
    loose = connector.ssl_context(False)
    assert connector.ssl_context(False) is loose
    assert loose.verify_mode == ssl.CERT_NONE
    assert not loose.check_hostname
    own = ssl.create_default_context()
    assert connector.ssl_context(own) is own
    assert Connector().ssl_context(None) is not verify  # each connector has its own
    connector.clear()
    assert connector.ssl_context(None) is not verify
    assert default_connector() is default_connector()


# --------------------------------------------------------------------------- connecting


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts and closes; yields its port."""

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


async def test_connect_tries_the_addresses_in_order(lookups: Lookups) -> None:
    connector = Connector()
    refused = closed_port()
    async with listening() as port:
        # A name whose first address refuses: as a cached answer of the resolver would be.
        connector.dns["twice.test", port] = (
            float("inf"),
            [
                (socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", refused)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", port)),
            ],
        )
        protocol = asyncio.Protocol()
        transport = await connector.connect(protocol, "twice.test", port)
        assert transport.get_extra_info("peername")[1] == port
        transport.close()
        connector.dns["nowhere.test", port] = (
            float("inf"),
            [(socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", refused))] * 2,
        )
        with pytest.raises(OSError, match=";"):  # what each address answered
            await connector.connect(asyncio.Protocol(), "nowhere.test", port)
    assert lookups.hosts == []


async def test_a_transport_uses_its_own_connector(lookups: Lookups) -> None:
    with python_peer() as origin:
        port = int(origin.rsplit(":", 1)[1])
        before = default_connector().dns.get(("localhost", port))
        connector = Connector()
        transports = [WebSocketTransport(connector=connector) for _ in range(3)]
        target = ConnectTarget(
            origin.replace("127.0.0.1", "localhost"), TOKEN_PATH, connect_timeout=5.0
        )
        await asyncio.gather(*(t.connect(target, Recorder()) for t in transports))
        try:
            assert all(t.connected for t in transports)
            assert lookups.hosts == ["localhost"]
            assert ("localhost", port) in connector.dns
            assert default_connector().dns.get(("localhost", port)) == before
        finally:
            for transport in transports:
                await transport.close()


@contextlib.contextmanager
def never_answering() -> Iterator[tuple[str, int]]:
    """A listener on 127.0.0.2 whose accept queue is full: a SYN to it gets no answer at all
    (Linux drops it), as from a host that is down or an IPv6 route that blackholes."""
    server = socket.socket()
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.2", 0))
        server.listen(0)
        address = server.getsockname()
        for _ in range(3):  # fill the queue (backlog 0 still holds one)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            fillers.append(filler)
        yield address
    finally:
        for filler in fillers:
            filler.close()
        server.close()


async def test_an_address_that_never_answers_costs_the_happy_eyeballs_delay(
    lookups: Lookups,
) -> None:
    connector = Connector(happy_eyeballs_delay=0.05)
    with never_answering() as (dead_host, dead_port):
        async with listening() as port:
            # Probe: without happy eyeballs, the dead address alone would hold the connect for
            # the kernel's SYN retries (minutes); the test's 5 s bound would fail.
            probe = asyncio.ensure_future(
                asyncio.get_running_loop().create_connection(asyncio.Protocol, dead_host, dead_port)
            )
            done, _ = await asyncio.wait([probe], timeout=0.5)
            probe.cancel()
            if done:
                pytest.skip("this kernel answers a full accept queue (no blackhole to test)")
            connector.dns["two.test", port] = (
                float("inf"),
                [
                    (socket.AF_INET, socket.SOCK_STREAM, 6, (dead_host, dead_port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, ("127.0.0.1", port)),
                ],
            )
            transport = await asyncio.wait_for(
                connector.connect(asyncio.Protocol(), "two.test", port), 5
            )
            assert transport.get_extra_info("peername")[1] == port
            transport.close()
    assert lookups.hosts == []


async def test_ipv6_literals_and_names_connect() -> None:
    connector = Connector()
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = server.sockets[0].getsockname()[1]
    try:
        transport = await connector.connect(asyncio.Protocol(), "::1", port)
        assert transport.get_extra_info("peername")[0] == "::1"
        transport.close()
    finally:
        server.close()
        await server.wait_closed()
    async with listening() as port:  # a name: localhost (one or several addresses)
        transport = await connector.connect(asyncio.Protocol(), "localhost", port)
        assert transport.get_extra_info("peername")[1] == port
        transport.close()
