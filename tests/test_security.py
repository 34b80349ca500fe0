"""Secrets stay secret, TLS is verified unless told otherwise, the bearer token stays home.

- Across a whole session at DEBUG (connect through the API with a bearer token, renew the token,
  reconnect, fail in several ways), no token, secret token or bearer token appears in a log
  record, a repr, a str or an exception message.
- TLS certificates are verified by default, for the status and for the Socket.IO connection;
  ``ssl=False`` or an SSLContext that trusts the certificate are the explicit ways around it.
- The bearer token goes to the API host only: fault proxies in front of ``status_url`` and
  ``url`` record every byte, and it is not among them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from jamsocket_rt.dev._backends import free_port
from jamsocket_rt.protocol.options import TRANSPORTS
from tests.helpers.backends import backend_command
from tests.helpers.faultproxy import FaultProxy, port_of, through
from tests.helpers.polling import eventually
from tests.helpers.transport_peers import self_signed_certificate

BEARER = "bearer-" + secrets.token_hex(12)


@pytest.fixture
async def dev() -> AsyncIterator[DevServer]:
    async with DevServer(backend=backend_command("python"), quiet=True) as server:
        yield server


# --------------------------------------------------------------------------- secrets


async def test_no_secret_in_any_log_record_repr_or_error(
    dev: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: list[jrt.ConnectResponse] = []
    shown: list[str] = []  # every repr, str and error message the program could print

    def show(*things: object) -> None:
        for thing in things:
            shown.extend((str(thing), repr(thing)))
            if isinstance(thing, BaseException):
                shown.extend(str(arg) for arg in thing.args)

    api = jrt.Jamsocket(account="acme", token=BEARER, service="chat", api_url=dev.api_url)
    show(api)

    async def connect() -> jrt.ConnectResponse:
        response = await api.connect(key="room", user="ada", auth={"role": "admin"})
        issued.append(response)
        show(response)
        return response

    async with api:
        first = await connect()
        session = jrt.Session(first, connect=connect, auth={"secret": first.secret_token})
        session.on_disconnect(show)
        session.on_error(show)
        async with session as s:
            show(s)
            assert await s.call("echo", "hello") == "hello"
            back = asyncio.Event()
            s.on_reconnect(back.set)
            dev.expire_tokens(first.backend_id)  # renewal through connect()
            await asyncio.wait_for(back.wait(), 5)
            back.clear()
            await s.send("disconnect_me")  # a server-side disconnect, then connect() again
            await eventually(lambda: s.state is jrt.SessionState.KICKED)
            await s.connect()
            await asyncio.wait_for(back.wait(), 5)
            assert (await s.call("whoami"))["auth"] == {"secret": first.secret_token}
            show(s, s.response)

        # Failures, each with its message on record.
        stale = jrt.ConnectResponse.from_dict(
            {**first.to_dict(), "url": first.url.replace(first.token, first.token[::-1])}
        )
        issued.append(stale)
        with pytest.raises(jrt.TokenExpired) as expired:
            async with jrt.Session(stale):
                pass
        dead = jrt.ConnectResponse.from_dict(
            {**first.to_dict(), "url": f"http://127.0.0.1:{free_port()}/{first.token}/"}
        )
        with pytest.raises(ConnectionError) as refused:
            async with jrt.Session(dead, connect_timeout=2):
                pass
        with pytest.raises(jrt.ApiError) as api_error:
            await api.connect(key="nobody-holds-this", spawn=False)
        bad = {**first.to_dict(), "spawned": "yes"}
        with pytest.raises(jrt.InvalidResponse) as invalid:
            jrt.ConnectResponse.from_dict(bad)
        show(expired.value, refused.value, api_error.value, invalid.value)
        await api.terminate(first.backend_id)

    assert len(issued) >= 3
    secret_values = {BEARER}
    for response in issued:
        secret_values |= {response.token, response.secret_token or BEARER}
    records = [record.getMessage() for record in caplog.records]
    assert any("token renewed" in message for message in records), "the logs were captured"
    for value in secret_values:
        assert value not in caplog.text
        assert not any(value in message for message in records)
        assert not any(value in text for text in shown), f"a secret in: {shown}"


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pem = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if pem is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return pem


class Platform:
    """Status routes that say ready and a Socket.IO backend, on HTTPS and on plain HTTP."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
        self.app = web.Application()
        self.sio.attach(self.app, socketio_path="tok/socket.io")
        self.app.router.add_get("/status", self.status)
        self.app.router.add_get("/status/stream", self.stream)
        self.sio.on("echo", self.echo)

    async def echo(self, sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "time": "2024-05-01T10:00:00Z"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        state = {"status": "ready", "time": "2024-05-01T10:00:00Z"}
        await response.write(f"data:{json.dumps(state)}\n\n".encode())
        await asyncio.sleep(3600)  # the server's part: a status stream never ends by itself
        return response


@pytest.fixture
async def platform(certificate: Path) -> AsyncIterator[tuple[str, str]]:
    """(https origin, http origin) of one :class:`Platform`."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate)
    runner = web.AppRunner(Platform().app, shutdown_timeout=0.1)
    await runner.setup()
    secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    await secure.start()
    await plain.start()
    ports = [address[1] for address in runner.addresses]
    try:
        yield f"https://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        await runner.cleanup()


def response_for(url_origin: str, status_origin: str) -> jrt.ConnectResponse:
    return jrt.ConnectResponse.from_dict(
        {
            "backend_id": "b1",
            "spawned": True,
            "status": "ready",
            "token": "tok",
            "url": f"{url_origin}/tok/",
            "status_url": f"{status_origin}/status",
        }
    )


async def test_tls_is_verified_by_default(platform: tuple[str, str]) -> None:
    secure, plain = platform
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(jrt.ApiConnectionError, match="did not verify") as status_error:
        async with jrt.Session(response_for(secure, secure), ready_timeout=30):
            pass
    assert loop.time() - started < 10, "a certificate that fails is not retried until timeout"
    assert "ssl=" in str(status_error.value)
    for transports in ([kind] for kind in TRANSPORTS):
        with pytest.raises(ConnectionError, match=r"(?i)certificate verify failed"):
            async with jrt.Session(response_for(secure, plain), transports=transports):
                pass


async def test_tls_verification_is_turned_off_or_customised_explicitly(
    platform: tuple[str, str], certificate: Path
) -> None:
    secure, _ = platform
    trusting = ssl.create_default_context(cafile=str(certificate))
    for setting in (False, trusting):
        for transports in ([kind] for kind in TRANSPORTS):
            response = response_for(secure, secure)
            async with jrt.Session(response, ssl=setting, transports=transports) as s:
                assert await s.call("echo", "secure") == "secure"


# --------------------------------------------------------------------------- bearer token


async def test_the_bearer_token_goes_to_the_api_host_only(dev: DevServer) -> None:
    async with (
        FaultProxy(port_of(dev.api_url), record=True) as api_host,
        FaultProxy(port_of(dev.api_url), record=True) as status_host,
        FaultProxy(port_of(dev.proxy_url), record=True) as backend_host,
    ):
        api = jrt.Jamsocket(account="acme", token=BEARER, service="chat", api_url=api_host.url)

        async def connect() -> jrt.ConnectResponse:
            # A ConnectResponse whose url and status_url are on other hosts than the API's.
            return through(await api.connect(key="room"), url=backend_host, status=status_host)

        async with api:
            response = await connect()
            async with jrt.Session(response, connect=connect) as s:
                assert await s.call("echo", 1) == 1
                back = asyncio.Event()
                s.on_reconnect(back.set)
                dev.expire_tokens(response.backend_id)
                await asyncio.wait_for(back.wait(), 5)
                assert await s.call("echo", 2) == 2
            # The API client's own helpers, given that response, use its status_url as is.
            assert (await jrt.fetch_status(None, response)).is_ready
            stream = api.status_stream(response)
            async with stream:
                assert (await stream.__anext__()).status == "scheduled"
            await api.terminate(response.backend_id)

    assert api_host.recorded is not None
    assert BEARER.encode() in api_host.recorded, "the bearer token is in use"
    for elsewhere in (status_host, backend_host):
        assert elsewhere.recorded
        assert BEARER.encode() not in elsewhere.recorded
        assert b"authorization:" not in bytes(elsewhere.recorded).lower()
