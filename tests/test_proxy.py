"""HTTP proxies: the rules (sans I/O), then every kind of connection through a real proxy.

The proxy is proxy.py, started per test (tests/helpers/proxy_server.py); its access log is what
a proxy can read, checked to hold no token for TLS targets.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jamsocket_rt as jrt
from jamsocket_rt import ConfigurationError
from jamsocket_rt.dev import BackgroundDevServer
from jamsocket_rt.protocol.engineio import ProtocolError
from jamsocket_rt.protocol.proxy import (
    Proxy,
    TunnelHandshake,
    TunnelRefused,
    no_proxy_matches,
    parse_proxy,
    proxy_for,
)
from jamsocket_rt.transport.base import ConnectTarget, Transport
from jamsocket_rt.transport.python_socketio import PythonSocketIOTransport
from jamsocket_rt.transport.websocket import WebSocketTransport
from tests.helpers.proxy_server import ProxyServer, proxy_server
from tests.helpers.transport_peers import (
    TOKEN_PATH,
    Recorder,
    python_peer,
    self_signed_certificate,
)

CLI = [sys.executable, "-m", "jamsocket_rt"]

# --------------------------------------------------------------------------- the rules


@pytest.mark.pure
def test_proxy_urls() -> None:
    proxy = parse_proxy("http://ann:s%40cret@proxy.corp:3128")
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.corp",
        3128,
        "ann",
        "s@cret",
    )
    assert "s@cret" not in repr(proxy)
    assert "cret" not in proxy.where
    assert proxy.url == "http://ann:s%40cret@proxy.corp:3128"
    assert parse_proxy("proxy.corp").port == 80  # no scheme: http, port 80
    assert parse_proxy("http://[::1]:8080").where == "[::1]:8080"
    with pytest.raises(ConfigurationError, match="only http://"):
        parse_proxy("socks5://proxy.corp:1080")
    with pytest.raises(ConfigurationError, match=r"HTTPS_PROXY.*no host"):
        parse_proxy("http://:8080", source="HTTPS_PROXY")
    with pytest.raises(ConfigurationError, match="proxy: not a proxy URL"):
        parse_proxy("http://proxy.corp:port")


@pytest.mark.pure
def test_the_environment_decides_unless_told() -> None:
    env = {
        "HTTPS_PROXY": "http://secure-upper:1",
        "https_proxy": "http://secure:1",
        "HTTP_PROXY": "http://plain:1",
        "NO_PROXY": "internal.corp,.example.org,10.0.0.0/8,localhost:8080",
    }

    def host_of(url: str, setting: str | bool | None = None) -> str | None:
        proxy = proxy_for(url, setting, env)
        return None if proxy is None else proxy.host

    assert host_of("wss://cluster.jamsocket.live/tok/") == "secure"  # lower case first
    assert host_of("https://api.jamsocket.com/v2") == "secure"
    assert host_of("ws://cluster:8080/") == "plain"
    assert host_of("https://internal.corp/") is None
    assert host_of("https://a.b.internal.corp/") is None
    assert host_of("https://example.org/") is None  # .example.org covers the domain too
    assert host_of("https://notexample.org/") == "secure"
    assert host_of("http://10.1.2.3/") is None  # CIDR
    assert host_of("http://localhost:8080/") is None
    assert host_of("http://localhost:9090/") == "plain"  # another port
    assert host_of("https://internal.corp/", "http://explicit:3128") == "explicit"
    assert host_of("https://anything/", False) is None
    assert proxy_for("https://x/", None, {}) is None
    assert no_proxy_matches("anything", 1, " * ")
    with pytest.raises(ConfigurationError, match="https_proxy"):
        proxy_for("https://x/", None, {"https_proxy": "ftp://nope"})


@pytest.mark.pure
@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_the_tunnel_handshake(chunk: int) -> None:
    proxy = Proxy("proxy.corp", 3128, "ann", "pw")
    handshake = TunnelHandshake(proxy, "backend.example", 443)
    request = handshake.request.decode()
    assert request.startswith("CONNECT backend.example:443 HTTP/1.1\r\nHost: backend.example:443")
    assert "Proxy-Authorization: Basic YW5uOnB3" in request

    def answer(data: bytes) -> bytes | None:
        fresh = TunnelHandshake(proxy, "backend.example", 443)
        for start in range(0, len(data), chunk):
            result = fresh.receive_data(data[start : start + chunk])
            if result is not None:
                return result
        return None

    assert answer(b"HTTP/1.1 200 Connection established\r\n\r\n") == b""
    with pytest.raises(TunnelRefused, match=r"proxy\.corp:3128 refused.*407") as refused:
        answer(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n")
    assert refused.value.status == 407
    assert "pw" not in str(refused.value)
    with pytest.raises(ProtocolError, match="something else than HTTP"):
        answer(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ProtocolError, match="endless"):
        answer(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000)
    with pytest.raises(ConnectionError, match="closed the connection"):
        TunnelHandshake(proxy, "h", 1).receive_data(b"")


@pytest.mark.pure
def test_bad_proxy_options_are_named() -> None:
    with pytest.raises(ConfigurationError, match="proxy"):
        jrt.SessionOptions(proxy="socks5://x:1")
    with pytest.raises(TypeError, match="proxy"):
        jrt.SessionOptions(proxy=3128)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- through a proxy


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ProxyServer]:
    with proxy_server(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with python_peer() as url:
        yield url


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    pem = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if pem is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pem)
    with python_peer(ssl_context=context) as url:
        yield url, pem


async def echo_through(transport: Transport, target: ConnectTarget) -> list[object]:
    await transport.connect(target, Recorder())
    try:
        answer: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        transport.emit("echo", ["through"], answer.set_result)
        return await asyncio.wait_for(answer, 5)
    finally:
        await transport.close()


@pytest.mark.parametrize("kind", ["websocket", "polling"])
async def test_socketio_through_a_proxy(kind: str, origin: str, proxy: ProxyServer) -> None:
    transport: Transport = (
        WebSocketTransport() if kind == "websocket" else PythonSocketIOTransport()
    )
    target = ConnectTarget(
        origin, socketio_path=TOKEN_PATH, transports=(kind,), proxy=proxy.url, connect_timeout=5
    )
    assert await echo_through(transport, target) == ["through"]
    port = origin.rsplit(":", 1)[1]
    await proxy.logged(f"127.0.0.1:{port}")  # it went through the proxy


async def test_wss_tunnels_and_the_proxy_reads_no_token(
    tls: tuple[str, Path], proxy: ProxyServer
) -> None:
    url, pem = tls
    target = ConnectTarget(
        url,
        socketio_path=TOKEN_PATH,
        proxy=proxy.url,
        ssl=ssl.create_default_context(cafile=str(pem)),  # checked against the backend's host
        connect_timeout=5,
    )
    assert await echo_through(WebSocketTransport(), target) == ["through"]
    log = await proxy.logged("CONNECT 127.0.0.1")
    assert "SOMETOKEN" not in log


async def test_the_proxy_from_the_environment_and_no_proxy(
    origin: str, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ConnectTarget(origin, socketio_path=TOKEN_PATH, connect_timeout=5)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert await echo_through(WebSocketTransport(), target) == ["through"]
    await proxy.logged("CONNECT")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert await echo_through(WebSocketTransport(), target) == ["through"]  # direct
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(ConnectionError, match=r"cannot reach the proxy 127\.0\.0\.1:9"):
        await WebSocketTransport().connect(target, Recorder())
    # proxy=False: direct, whatever the environment says
    direct = ConnectTarget(origin, socketio_path=TOKEN_PATH, connect_timeout=5, proxy=False)
    assert await echo_through(WebSocketTransport(), direct) == ["through"]


async def test_a_proxy_that_wants_credentials(origin: str, tmp_path: Path) -> None:
    with proxy_server(tmp_path, credentials="ann:pw") as proxy:
        anonymous = proxy.url.replace("ann:pw@", "")
        target = ConnectTarget(origin, socketio_path=TOKEN_PATH, connect_timeout=5)
        with pytest.raises(ConnectionError) as refused:
            await WebSocketTransport().connect(
                ConnectTarget(origin, socketio_path=TOKEN_PATH, proxy=anonymous), Recorder()
            )
        message = str(refused.value)
        assert proxy.where in message
        assert "407" in message
        assert "SOMETOKEN" not in message
        with_credentials = ConnectTarget(
            origin, socketio_path=TOKEN_PATH, proxy=proxy.url, connect_timeout=5
        )
        assert await echo_through(WebSocketTransport(), with_credentials) == ["through"]
        assert target.proxy is None


def test_the_platform_api_and_a_session_through_a_proxy(
    jamsocket_dev_server: BackgroundDevServer, tmp_path: Path
) -> None:
    dev = jamsocket_dev_server
    with proxy_server(tmp_path, credentials="ann:pw") as proxy:
        with jrt.SyncJamsocket.dev_server(dev.api_url, proxy=proxy.url) as api:
            response = api.connect(key="through-a-proxy")
            with jrt.SyncSession(response, proxy=proxy.url) as session:
                assert session.call("echo", "hi", timeout=5) == "hi"
            api.terminate(response.backend_id)
        # The API call and the session's status reads (plain http: the proxy reads them), and
        # the Socket.IO websocket, tunnelled.
        proxy.logged_sync("/connect", "/status", "CONNECT")
    with proxy_server(tmp_path / "refusing", credentials="ann:pw") as proxy:
        anonymous = proxy.url.replace("ann:pw@", "")
        with (
            jrt.SyncJamsocket.dev_server(dev.api_url, proxy=anonymous) as api,
            pytest.raises(jrt.ApiError) as refused,
        ):
            api.connect(key="refused")
        assert refused.value.http_status == 407
        assert proxy.where in str(refused.value)
        assert "pw" not in str(refused.value)
    nowhere = r"cannot reach the proxy 127\.0\.0\.1:9"
    with (
        jrt.SyncJamsocket.dev_server(dev.api_url, proxy="http://127.0.0.1:9") as api,
        pytest.raises(jrt.ApiConnectionError, match=nowhere),
    ):
        api.connect(key="nowhere")


def test_the_command_line_takes_a_proxy(
    jamsocket_dev_server: BackgroundDevServer, tmp_path: Path
) -> None:
    from jamsocket_rt.load import LoadConfig

    with proxy_server(tmp_path) as proxy:
        flags = ["--api-url", jamsocket_dev_server.api_url, "--proxy", proxy.url]
        done = subprocess.run(
            [*CLI, "connect", *flags, "--call", "echo", '"x"'],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == '"x"'
        proxy.logged_sync("/connect", "CONNECT")
    refused = subprocess.run(
        [*CLI, "status", "b", "--proxy", "socks5://x:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--proxy" in refused.stderr
    with pytest.raises(ValueError, match="--proxy"):
        LoadConfig(proxy="socks5://x:1")
    described = LoadConfig(proxy="http://ann:pw@proxy.corp:3128").describe()
    assert described["proxy"] == "proxy.corp:3128"
