"""The platform API client: the sans-I/O request layer, then real HTTP against stub servers.

Every network test talks to a real aiohttp server on 127.0.0.1 (see ``plane_stub.py``); the
last tests use the dev server (``jamsocket_rt.dev.DevServer``) with its bundled backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from jamsocket_rt import (
    ApiError,
    BackendState,
    BackendStatus,
    ConnectRequest,
    ConnectResponse,
    ExecutableOptions,
    InvalidResponse,
    JamsocketError,
    SpawnOptions,
    TerminationKind,
    TerminationReason,
)
from jamsocket_rt._api import (
    ApiConnectionError,
    ApiTimeout,
    Jamsocket,
    Plane,
    StatusStream,
    fetch_status,
    follow_status_stream,
)
from jamsocket_rt.protocol.api import (
    ConfigurationError,
    HttpResponse,
    JamsocketApi,
    PlaneApi,
    api_error,
    make_connect_request,
    promises_keepalives,
    same_origin,
    stream_url_for,
)
from jamsocket_rt.protocol.session import Backoff
from tests.helpers.net import free_port
from tests.helpers.plane_stub import JamsocketStub, PlaneStub, StubServer
from tests.helpers.polling import eventually

TOKEN = "secret-api-token"
FAST = Backoff(initial=0.01, maximum=0.05)


async def collect(stream: StatusStream, limit: float = 5.0) -> list[BackendState]:
    async def run() -> list[BackendState]:
        return [state async for state in stream]

    return await asyncio.wait_for(run(), limit)


def names(states: list[BackendState]) -> list[str]:
    return [str(s.status) for s in states]


@pytest.fixture
async def plane() -> AsyncIterator[PlaneStub]:
    async with PlaneStub() as stub:
        yield stub


@pytest.fixture
async def jam() -> AsyncIterator[JamsocketStub]:
    async with JamsocketStub(token=TOKEN) as stub:
        yield stub


@pytest.fixture
async def other() -> AsyncIterator[StubServer]:
    """Another host: records whatever reaches it."""
    async with StubServer() as server:
        yield server


def jamsocket(stub: StubServer, **options: Any) -> Jamsocket:
    options.setdefault("backoff", FAST)
    return Jamsocket(account="acme", token=TOKEN, service="chat", api_url=stub.url, **options)


# -- sans-I/O: requests ---------------------------------------------------------------------


def test_jamsocket_connect_request() -> None:
    api = JamsocketApi(account="acme", service="chat", token=TOKEN, api_url="https://api.x.com/")
    request = api.connect_request(ConnectRequest())
    assert request.method == "POST"
    assert request.url == "https://api.x.com/v2/service/acme/chat/connect"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == b"{}"
    assert not request.follow_redirects
    assert TOKEN not in repr(request)
    assert TOKEN not in repr(api)


def test_jamsocket_service_with_environment_and_quoting() -> None:
    api = JamsocketApi(account="a b", service="chat/staging", token=TOKEN)
    request = api.connect_request(ConnectRequest(key="k", user="u"))
    assert request.url == "https://api.jamsocket.com/v2/service/a%20b/chat/staging/connect"
    assert json.loads(request.body or b"") == {"key": "k", "user": "u"}


def test_jamsocket_status_stream_and_terminate_requests() -> None:
    api = JamsocketApi(account="a", service="s", token=TOKEN, api_url="http://h:1")
    status = api.status_request("b1")
    assert (status.method, status.url) == ("GET", "http://h:1/v2/backend/b1/status")
    assert "Authorization" not in status.headers  # status endpoints need no auth
    stream = api.stream_request("b1", "ready")
    assert stream.url == "http://h:1/v2/backend/b1/status/stream"
    assert stream.headers["Last-Event-ID"] == "ready"
    assert stream.headers["Accept"] == "text/event-stream"
    assert "Last-Event-ID" not in api.stream_request("b1").headers
    terminate = api.terminate_request("b1", hard=True)
    assert (terminate.method, terminate.url) == ("POST", "http://h:1/v2/backend/b1/terminate")
    assert terminate.body == b'{"hard":true}'
    assert terminate.headers["Authorization"] == f"Bearer {TOKEN}"


def test_token_is_only_attached_for_the_api_origin() -> None:
    api = JamsocketApi(account="a", service="s", token=TOKEN, api_url="https://api.x.com")
    assert "Authorization" in api.build("POST", "https://API.x.com:443/v2/x", auth=True).headers
    for elsewhere in (
        "http://api.x.com/v2/x",  # another scheme
        "https://api.x.com:8443/v2/x",  # another port
        "https://evil.com/v2/x",
        "https://api.x.com.evil.com/v2/x",
    ):
        request = api.build("POST", elsewhere, auth=True)
        assert "Authorization" not in request.headers, elsewhere
        assert request.follow_redirects
    assert same_origin("http://h/x", "http://h:80/y")
    assert not same_origin("http://h/x", "https://h/x")


def test_plane_requests() -> None:
    api = PlaneApi("http://ctl:8080/", image="ghcr.io/acme/app:v1")
    assert api.status_url("b1") == "http://ctl:8080/pub/b/b1/status"
    assert api.stream_request("b1").url == "http://ctl:8080/pub/b/b1/status-stream"
    assert api.terminate_request("b1").url == "http://ctl:8080/ctrl/b/b1/soft-terminate"
    hard = api.terminate_request("b1", hard=True)
    assert hard.url == "http://ctl:8080/ctrl/b/b1/hard-terminate"
    assert "Authorization" not in hard.headers  # no token configured
    assert api.connect_request(ConnectRequest()).url == "http://ctl:8080/ctrl/connect"


def test_plane_token_from_url_user_info_is_kept_out_of_urls() -> None:
    api = PlaneApi("https://tok123@ctl.example.com/base")
    assert api.base_url == "https://ctl.example.com/base"
    request = api.terminate_request("b1")
    assert request.url == "https://ctl.example.com/base/ctrl/b/b1/soft-terminate"
    assert request.headers["Authorization"] == "Bearer tok123"
    assert "tok123" not in repr(api)
    assert "tok123" not in repr(request)


def test_plane_connect_body_mapping() -> None:
    api = PlaneApi("http://ctl", image="registry:5000/team/app:v1@sha256:abc", namespace="ns")
    spawn = SpawnOptions(
        tag="v2",
        cluster="c1",
        lifetime_limit_seconds=60,
        max_idle_seconds=30,
        executable=ExecutableOptions(env={"A": "1"}, mount=True),
    )
    body = api.connect_body(ConnectRequest(key="room", spawn=spawn, user="bob", auth={"x": 1}))
    assert body == {
        "key": {"name": "room", "namespace": "ns"},
        "spawn_config": {
            "executable": {"image": "registry:5000/team/app:v2", "env": {"A": "1"}, "mount": True},
            "cluster": "c1",
            "lifetime_limit_seconds": 60,
            "max_idle_seconds": 30,
        },
        "user": "bob",
        "auth": {"x": 1},
    }


def test_plane_connect_body_image_rules() -> None:
    api = PlaneApi("http://ctl", image="app")
    assert api.connect_body(ConnectRequest()) == {"spawn_config": {"executable": {"image": "app"}}}
    assert api.connect_body(ConnectRequest(), image="other:3") == {
        "spawn_config": {"executable": {"image": "other:3"}}
    }
    assert api.connect_body(ConnectRequest(key="k", spawn=False)) == {"key": {"name": "k"}}
    no_image = PlaneApi("http://ctl")
    assert no_image.connect_body(ConnectRequest(key="k")) == {"key": {"name": "k"}}
    with pytest.raises(ConfigurationError, match="image"):
        no_image.connect_body(ConnectRequest(spawn=True))


def test_make_connect_request_accepts_every_form() -> None:
    spawn = SpawnOptions(tag="t")
    expected = ConnectRequest(key="k", spawn=spawn)
    assert make_connect_request(expected) is expected
    assert make_connect_request(key="k", spawn=spawn) == expected
    assert make_connect_request(key="k", spawn={"tag": "t"}) == expected
    assert make_connect_request({"key": "k", "spawn": {"tag": "t"}}) == expected
    assert make_connect_request() == ConnectRequest()
    with pytest.raises(TypeError, match="kye"):
        make_connect_request(kye="k")
    with pytest.raises(TypeError):
        make_connect_request(expected, key="k")
    with pytest.raises(InvalidResponse, match="key"):
        make_connect_request(key=3)


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="api_url"):
        JamsocketApi(account="a", service="s", token="t", api_url="api.jamsocket.com")
    with pytest.raises(ConfigurationError, match="account"):
        JamsocketApi(account="", service="s", token="t")
    with pytest.raises(ConfigurationError, match="token"):
        Jamsocket(account="a", service="s", token="")
    with pytest.raises(ConfigurationError, match="timeout"):
        Jamsocket(account="a", service="s", token="t", timeout=0)
    assert isinstance(ConfigurationError("x"), (JamsocketError, ValueError))


def test_stream_url_and_keepalive_rules() -> None:
    assert stream_url_for("http://c/pub/b/x/status") == "http://c/pub/b/x/status-stream"
    assert stream_url_for("http://a/v2/backend/x/status/") == "http://a/v2/backend/x/status/stream"
    assert promises_keepalives("http://c/pub/b/x/status-stream")
    assert not promises_keepalives("http://a/v2/backend/x/status/stream")


# -- sans-I/O: errors -------------------------------------------------------------------------


def test_api_error_from_a_jamsocket_body() -> None:
    body = b'{"error":{"message":"slow down","status":429,"code":"RateLimited","id":"r1"}}'
    error = api_error(HttpResponse(429, body, "application/json", "Too Many Requests"))
    assert (error.http_status, error.message, error.code, error.request_id) == (
        429,
        "slow down",
        "RateLimited",
        "r1",
    )
    assert error.is_rate_limit
    assert "rate or plan limit" in str(error)


def test_api_error_from_a_plane_body() -> None:
    body = b'{"id":"e9","kind":"KeyHeld","message":"Lock is held but tag does not match."}'
    error = api_error(HttpResponse(409, body, "application/json"))
    assert (error.code, error.request_id) == ("KeyHeld", "e9")
    assert error.message.startswith("Lock is held")


def test_api_error_from_a_plain_error_string() -> None:
    error = api_error(HttpResponse(403, b'{"error": "forbidden here"}', "application/json"))
    assert error.message == "forbidden here"
    assert error.code is None


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (HttpResponse(502, b"<html>bad gateway</html>", "text/html", "Bad Gateway"), "Bad Gateway"),
        (HttpResponse(500, b""), "Internal Server Error"),
        (HttpResponse(503, b'["a list"]', "application/json"), "Service Unavailable"),
        (HttpResponse(307, b"", "", "Temporary Redirect"), "redirects are not followed"),
        (HttpResponse(599, b"x"), "error"),
    ],
)
def test_api_error_without_a_usable_body(response: HttpResponse, expected: str) -> None:
    error = api_error(response)
    assert error.http_status == response.status
    assert expected in str(error)
    assert "<html>" not in str(error)


# -- Plane, over HTTP -------------------------------------------------------------------------


async def test_plane_connect_status_stream_terminate(plane: PlaneStub) -> None:
    async with Plane(plane.url, image="ghcr.io/acme/app:1", backoff=FAST) as client:
        response = await client.connect(key="room-1", user="alice")
        assert response.spawned
        assert response.ready_url == ""
        assert response.status is BackendStatus.SCHEDULED
        assert response.status_url == f"{plane.url}/pub/b/{response.backend_id}/status"
        sent = plane.requests_to("/ctrl/connect")[0].json()
        assert sent == {
            "key": {"name": "room-1"},
            "spawn_config": {"executable": {"image": "ghcr.io/acme/app:1"}},
            "user": "alice",
        }

        again = await client.connect(key="room-1")
        assert again.backend_id == response.backend_id
        assert not again.spawned

        await plane.run_to(response.backend_id, "ready")
        state = await client.status(response.backend_id)
        assert state.status is BackendStatus.READY
        assert state.time.year >= 2024  # epoch milliseconds

        stream = client.status_stream(response.backend_id)
        first = [await stream.__anext__() for _ in range(5)]
        assert names(first) == ["scheduled", "loading", "starting", "waiting", "ready"]
        await client.terminate(response.backend_id, hard=True)
        rest = await collect(stream)
        assert names(rest) == ["terminating", "terminated"]
        assert rest[0].termination_kind is TerminationKind.HARD
        assert rest[1].termination_reason is TerminationReason.EXTERNAL
        assert rest[1].exit_error is False
        assert stream.done
        assert plane.requests_to("/hard-terminate")


async def test_plane_errors(plane: PlaneStub) -> None:
    async with Plane(plane.url) as client:
        with pytest.raises(ApiError) as info:
            await client.connect(key="nobody")  # no image: cannot spawn
        assert info.value.http_status == 409
        assert info.value.code == "KeyUnheldNoSpawnConfig"
        assert info.value.request_id
        with pytest.raises(ApiError) as info:
            await client.status("missing")
        assert (info.value.http_status, info.value.code) == (404, "NotFound")
        with pytest.raises(ApiError, match="404"):
            await client.terminate("missing")
        with pytest.raises(ConfigurationError):
            await client.connect(spawn=True)


async def test_plane_non_json_error_body(plane: PlaneStub) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(status=422, text="Failed to deserialize the JSON body")

    plane.route("POST", "/ctrl/connect", plain)
    async with Plane(plane.url, image="x") as client:
        with pytest.raises(ApiError, match=r"HTTP 422.*non-JSON error body") as info:
            await client.connect()
        assert info.value.code is None


async def test_plane_bearer_token_for_a_protected_controller() -> None:
    async with PlaneStub(token="ctl-token") as stub:
        async with Plane(stub.url, image="x") as anonymous:
            with pytest.raises(ApiError, match="401"):
                await anonymous.connect()
        async with Plane(stub.url, image="x", token="ctl-token") as client:
            response = await client.connect()
            await client.status(response.backend_id)
            await client.terminate(response.backend_id)
        connect, status = stub.requests_to("/ctrl/connect")[-1], stub.requests_to("/status")[-1]
        assert connect.headers["Authorization"] == "Bearer ctl-token"
        assert "Authorization" not in status.headers


async def test_plane_stream_resumes_with_last_event_id(plane: PlaneStub) -> None:
    plane.drop_after, plane.cut_mid_event = 2, True
    backend = plane.new_backend()
    await plane.run_to(backend.id, "terminated")
    async with Plane(plane.url, backoff=FAST) as client:
        states = await collect(client.status_stream(backend.id))
    assert names(states) == [
        "scheduled",
        "loading",
        "starting",
        "waiting",
        "ready",
        "terminating",
        "terminated",
    ]
    streams = plane.requests_to("/status-stream")
    assert len(streams) == 2
    assert "Last-Event-ID" not in streams[0].headers
    assert streams[1].headers["Last-Event-ID"] == "loading"


async def test_plane_stream_read_timeout_resumes_a_silent_stream() -> None:
    async with PlaneStub(keepalive=None) as stub:
        backend = stub.new_backend()
        async with Plane(stub.url, backoff=FAST) as client:
            stream = client.status_stream(backend.id, read_timeout=0.2)
            assert names([await stream.__anext__()]) == ["scheduled"]
            # The server goes silent (no keep-alives); news arrive once the read timeout has
            # resumed the stream.
            reading = asyncio.ensure_future(collect(stream))
            await eventually(lambda: len(stub.requests_to("/status-stream")) >= 2)
            await stub.run_to(backend.id, "terminated")
            rest = await reading
        assert names(rest)[-1] == "terminated"
        assert len(stub.requests_to("/status-stream")) >= 2


async def test_plane_keepalives_keep_a_stream_alive() -> None:
    async with PlaneStub(keepalive=0.05) as stub:
        backend = stub.new_backend()
        async with Plane(stub.url, backoff=FAST) as client:
            stream = client.status_stream(backend.id, read_timeout=0.2)
            await stream.__anext__()
            await asyncio.sleep(0.4)  # an absence: twice the read timeout, and no resumption
            await stub.run_to(backend.id, "terminated")
            await collect(stream)
        assert len(stub.requests_to("/status-stream")) == 1


# -- Jamsocket, over HTTP ---------------------------------------------------------------------


async def test_jamsocket_connect_status_stream_terminate(jam: JamsocketStub) -> None:
    async with jamsocket(jam) as client:
        response = await client.connect(ConnectRequest(key="k", spawn=SpawnOptions(tag="v2")))
        assert isinstance(response, ConnectResponse)
        recorded = jam.requests_to("/connect")[0]
        assert recorded.path == "/v2/service/acme/chat/connect"
        assert recorded.headers["Authorization"] == f"Bearer {TOKEN}"
        assert recorded.headers["Content-Type"] == "application/json"
        assert recorded.json() == {"key": "k", "spawn": {"tag": "v2"}}

        await jam.run_to(response.backend_id, "ready")
        assert (await client.status(response.backend_id)).is_ready
        stream = client.status_stream(response.backend_id)
        assert names([await stream.__anext__() for _ in range(5)])[-1] == "ready"
        await client.terminate(response.backend_id)
        assert names(await collect(stream)) == ["terminating", "terminated"]
        terminate = jam.requests_to("/terminate")[0]
        assert terminate.json() == {"hard": False}
        assert terminate.headers["Authorization"] == f"Bearer {TOKEN}"
        for recorded in jam.requests_to("/status"):
            assert "Authorization" not in recorded.headers


async def test_jamsocket_connect_with_an_empty_body(jam: JamsocketStub) -> None:
    async with jamsocket(jam) as client:
        await client.connect()
    assert jam.requests_to("/connect")[0].body == b"{}"


async def test_jamsocket_stream_resumes_after_a_drop_without_repeats(jam: JamsocketStub) -> None:
    jam.drop_after, jam.max_drops, jam.abort_connection = 3, 2, True
    backend = jam.new_backend()
    await jam.run_to(backend.id, "ready")
    async with jamsocket(jam) as client:
        stream = client.status_stream(backend.id)
        head = [await stream.__anext__() for _ in range(5)]
        await jam.advance(backend.id, "terminated")
        states = head + await collect(stream)
    assert names(states) == ["scheduled", "loading", "starting", "waiting", "ready", "terminated"]
    streams = jam.requests_to("/status/stream")
    assert len(streams) == 3  # two drops; no ids, so the history was replayed each time
    assert all("Last-Event-ID" not in r.headers for r in streams)


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            429,
            {"error": {"message": "too many", "status": 429, "code": "Limit", "id": "r"}},
            "Limit",
        ),
        (
            500,
            {"error": {"message": "boom", "status": 500, "code": "Internal", "id": "r"}},
            "Internal",
        ),
        (401, {"error": {"message": "bad token", "code": "Unauthorized"}}, "Unauthorized"),
    ],
)
async def test_jamsocket_error_bodies(
    jam: JamsocketStub, status: int, body: dict[str, Any], code: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    jam.route("POST", "/v2/service/{a}/{s}/connect", answer)
    async with jamsocket(jam) as client:
        with pytest.raises(ApiError) as info:
            await client.connect()
    assert (info.value.http_status, info.value.code) == (status, code)
    assert info.value.is_rate_limit == (status == 429)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (b"<html>hello</html>", "text/html", "not valid JSON"),
        (b'{"backend_id": "b"}', "application/json", "spawned: required field is missing"),
        (b'{"backend_id": 1, "spawned": "yes"}', "application/json", "backend_id"),
        (b"[]", "application/json", "expected a JSON object"),
    ],
)
async def test_wrong_2xx_bodies_are_invalid_responses(
    jam: JamsocketStub, body: bytes, content_type: str, match: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    jam.route("POST", "/v2/service/{a}/{s}/connect", answer)
    jam.route("GET", "/v2/backend/{b}/status", answer)
    async with jamsocket(jam) as client:
        with pytest.raises(InvalidResponse, match=match):
            await client.connect()
        with pytest.raises(InvalidResponse):
            await client.status("b1")


async def test_timeout_when_the_server_never_answers(jam: JamsocketStub) -> None:
    async def hang(request: web.Request) -> web.Response:
        await jam.wait_closed()
        return web.Response()

    jam.route("POST", "/v2/service/{a}/{s}/connect", hang)
    jam.route("GET", "/v2/backend/{b}/status/stream", hang)
    async with jamsocket(jam, timeout=0.2, max_retries=1) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(
            ApiTimeout, match=r"no answer from http://127\.0\.0\.1:\d+ within 0\.2 s"
        ):
            await client.connect()
        assert loop.time() - started < 2
        with pytest.raises(TimeoutError):  # ApiTimeout is a TimeoutError
            await collect(client.status_stream("b1"))


async def test_timeout_as_a_client_timeout(jam: JamsocketStub) -> None:
    async def hang(request: web.Request) -> web.Response:
        await jam.wait_closed()
        return web.Response()

    jam.route("GET", "/v2/backend/{b}/status", hang)
    async with jamsocket(jam, timeout=aiohttp.ClientTimeout(total=0.2)) as client:
        with pytest.raises(ApiTimeout) as info:
            await client.status("b1")
    assert info.value.timeout == 0.2


async def test_connection_refused_names_the_host() -> None:
    port = free_port()
    async with Jamsocket(
        account="a", service="s", token=TOKEN, api_url=f"http://127.0.0.1:{port}"
    ) as client:
        with pytest.raises(ApiConnectionError, match=f"cannot connect to http://127.0.0.1:{port}"):
            await client.connect()
        with pytest.raises(ConnectionError):
            await client.status("b1")


async def test_a_stream_gives_up_after_max_retries() -> None:
    port = free_port()
    stream = follow_status_stream(
        None, f"http://127.0.0.1:{port}/v2/backend/b/status", backoff=FAST, max_retries=2
    )
    with pytest.raises(ApiConnectionError, match="cannot connect"):
        await collect(stream)


async def test_a_stream_that_keeps_ending_gives_up(jam: JamsocketStub) -> None:
    async def empty(request: web.Request) -> web.StreamResponse:
        return web.Response(content_type="text/event-stream", text=": nothing\n\n")

    jam.route("GET", "/v2/backend/{b}/status/stream", empty)
    async with jamsocket(jam, max_retries=3) as client:
        with pytest.raises(ApiConnectionError, match="kept ending before 'terminated'"):
            await collect(client.status_stream("b1"))
    assert len(jam.requests_to("/status/stream")) == 4


async def test_stream_errors_that_are_not_retried(jam: JamsocketStub) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def gone(request: web.Request) -> web.Response:
        return jam.not_found()

    async with jamsocket(jam) as client:
        jam.route("GET", "/v2/backend/{b}/status/stream", gone)
        with pytest.raises(ApiError) as info:
            await collect(client.status_stream("b1"))
        assert (info.value.http_status, info.value.code) == (404, "BackendNotFound")
        jam.route("GET", "/v2/backend/{b}/status/stream", html)
        with pytest.raises(InvalidResponse, match="text/event-stream"):
            await collect(client.status_stream("b1"))
    assert len(jam.requests_to("/status/stream")) == 2


async def test_stream_retries_a_server_error(jam: JamsocketStub) -> None:
    backend = jam.new_backend()
    await jam.run_to(backend.id, "terminated")
    failures = 0
    original = jam.status_stream

    async def flaky(request: web.Request) -> web.StreamResponse:
        nonlocal failures
        if failures < 2:
            failures += 1
            return jam.error(503, "Unavailable", "try later")
        return await original(request)

    jam.route("GET", "/v2/backend/{backend_id}/status/stream", flaky)
    async with jamsocket(jam) as client:
        assert names(await collect(client.status_stream(backend.id)))[-1] == "terminated"


async def test_invalid_event_in_a_stream(jam: JamsocketStub) -> None:
    async def bad(request: web.Request) -> web.StreamResponse:
        return web.Response(content_type="text/event-stream", text='data: {"status": 5}\n\n')

    jam.route("GET", "/v2/backend/{b}/status/stream", bad)
    async with jamsocket(jam) as client:
        with pytest.raises(InvalidResponse, match="status"):
            await collect(client.status_stream("b1"))


# -- the bearer token stays with the API host -------------------------------------------------


async def test_token_never_reaches_a_status_url_on_another_host(other: StubServer) -> None:
    async with JamsocketStub(token=TOKEN, status_base=other.url) as jam:
        original_stream = jam.status_stream
        other.route("GET", "/v2/backend/{backend_id}/status", jam.status)
        other.route("GET", "/v2/backend/{backend_id}/status/stream", original_stream)
        async with jamsocket(jam) as client:
            response = await client.connect()
            assert response.status_url.startswith(other.url)
            await jam.run_to(response.backend_id, "terminated")
            assert names(await collect(client.status_stream(response)))[-1] == "terminated"
            assert (await fetch_status(None, response)).is_terminated
            assert names(await collect(follow_status_stream(None, response)))[-1] == "terminated"
    assert len(other.requests) == 3
    for recorded in other.requests:
        assert "Authorization" not in recorded.headers
        assert TOKEN not in json.dumps(recorded.headers)


async def test_a_redirect_does_not_carry_the_token_away(
    jam: JamsocketStub, other: StubServer
) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{other.url}/v2/service/acme/chat/connect")

    jam.route("POST", "/v2/service/{a}/{s}/connect", redirect)
    async with jamsocket(jam) as client:
        with pytest.raises(ApiError, match="redirects are not followed") as info:
            await client.connect()
    assert info.value.http_status == 307
    assert other.requests == []


# -- module-level helpers for a ConnectResponse ------------------------------------------------


async def test_fetch_status_retries_a_404_once(jam: JamsocketStub) -> None:
    backend = jam.new_backend()
    calls = 0

    async def late(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return jam.not_found()  # the dev server's answer just after connect
        return await jam.status(request)

    jam.route("GET", "/v2/backend/{backend_id}/status", late)
    url = f"{jam.url}/v2/backend/{backend.id}/status"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ApiError, match="404"):
            await fetch_status(session, url)
        calls = 0
        state = await fetch_status(session, url, retries=1, retry_delay=0.01)
        assert state.status is BackendStatus.SCHEDULED
        assert not session.closed  # a given session is left open


async def test_follow_status_stream_with_a_known_state(plane: PlaneStub) -> None:
    backend = plane.new_backend()
    await plane.run_to(backend.id, "terminated")
    url = f"{plane.url}/pub/b/{backend.id}/status"
    known = await fetch_status(None, url)
    stream = follow_status_stream(None, url, last_state=known)
    assert names(await collect(stream)) == []  # terminated already known: nothing new
    ready = BackendState.from_dict({"status": "ready", "time": 0})
    stream = follow_status_stream(None, url, last_state=ready)
    assert names(await collect(stream)) == ["terminating", "terminated"]


async def test_read_timeout_is_automatic_for_plane_only(plane: PlaneStub) -> None:
    assert follow_status_stream(None, f"{plane.url}/pub/b/x/status")._read_timeout == 45.0
    assert follow_status_stream(None, "http://h/v2/backend/x/status")._read_timeout is None
    with pytest.raises(ConfigurationError):
        follow_status_stream(None, "http://h/x/status", read_timeout=0)


# -- lifecycle ----------------------------------------------------------------------------------


async def test_owned_session_is_closed_and_given_session_is_not(jam: JamsocketStub) -> None:
    client = jamsocket(jam)
    await client.connect()
    session = client._transport._session
    assert session is not None
    await client.aclose()
    assert session.closed
    assert client.closed
    await client.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await client.connect()

    async with aiohttp.ClientSession() as given:
        async with jamsocket(jam, session=given) as client:
            await client.connect()
        assert not given.closed


async def test_closing_the_client_ends_a_stream_in_progress(plane: PlaneStub) -> None:
    backend = plane.new_backend()
    client = Plane(plane.url, backoff=FAST)
    stream = client.status_stream(backend.id)
    assert names([await stream.__anext__()]) == ["scheduled"]
    reader = asyncio.ensure_future(collect(stream))
    # An absence: the reader waits for more (the stream is in progress) until the close.
    done, _ = await asyncio.wait({reader}, timeout=0.05)
    assert not done
    await client.aclose()
    assert await asyncio.wait_for(reader, 2) == []


async def test_a_stream_for_an_unknown_backend_stays_silent_until_closed(
    jam: JamsocketStub,
) -> None:
    async with jamsocket(jam) as client:
        stream = client.status_stream("nobody")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 0.2)
        await stream.aclose()
    assert len(jam.requests_to("/status/stream")) == 1


async def test_closing_a_stream_early(plane: PlaneStub) -> None:
    backend = plane.new_backend()
    async with Plane(plane.url) as client, client.status_stream(backend.id) as stream:
        await stream.__anext__()
    await stream.aclose()
    assert stream.last_state is not None
    assert stream.last_state.status is BackendStatus.SCHEDULED


def test_from_env() -> None:
    client = Jamsocket.from_env(
        {"JAMSOCKET_ACCOUNT": "acme", "JAMSOCKET_TOKEN": TOKEN, "JAMSOCKET_SERVICE": "chat"}
    )
    assert "acme" in repr(client)
    assert "api.jamsocket.com" in repr(client)
    assert TOKEN not in repr(client)
    dev = Jamsocket.from_env({"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": "9000"})
    assert "http://localhost:9000" in repr(dev)
    assert "localhost:8080" in repr(Jamsocket.from_env({"JAMSOCKET_DEV": "TRUE"}))
    custom = Jamsocket.from_env(
        {
            "JAMSOCKET_ACCOUNT": "a",
            "JAMSOCKET_TOKEN": "t",
            "JAMSOCKET_SERVICE": "s",
            "JAMSOCKET_API_URL": "http://127.0.0.1:1",
        }
    )
    assert "http://127.0.0.1:1" in repr(custom)


def test_from_env_names_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="JAMSOCKET_TOKEN, JAMSOCKET_SERVICE"):
        Jamsocket.from_env({"JAMSOCKET_ACCOUNT": "a"})
    with pytest.raises(ConfigurationError, match="JAMSOCKET_DEV_PORT"):
        Jamsocket.from_env({"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": "http"})


def test_dev() -> None:
    assert "http://localhost:8080" in repr(Jamsocket.dev())
    assert "http://127.0.0.1:5" in repr(Jamsocket.dev(api_url="http://127.0.0.1:5"))
    assert "http://127.0.0.1:5" in repr(Jamsocket.dev_server("http://127.0.0.1:5"))


# -- against the dev server ---------------------------------------------------------------------


@pytest.fixture
async def dev_server() -> AsyncIterator[Any]:
    from jamsocket_rt.dev import DevServer

    async with DevServer(terminate_grace=0.5, quiet=True) as server:
        yield server


async def test_dev_server_full_lifecycle(dev_server: Any) -> None:
    port = int(dev_server.api_url.rsplit(":", 1)[1])
    env = {"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": str(port)}
    async with Jamsocket.from_env(env, backoff=FAST) as client:
        response = await client.connect(key="room")
        assert response.spawned
        stream = client.status_stream(response)
        seen = []
        async for state in stream:
            seen.append(state)
            if state.is_ready:
                break
        assert names(seen) == ["scheduled", "loading", "starting", "waiting", "ready"]

        again = await client.connect({"key": "room"})
        assert again.backend_id == response.backend_id
        assert not again.spawned
        assert (await client.status(response.backend_id)).is_ready

        await client.terminate(response.backend_id)
        rest = await collect(stream, limit=10)
        assert names(rest) == ["terminating", "terminated"]
        assert rest[-1].termination_kind is TerminationKind.SOFT
        # The stream replays everything; with what we know, nothing is new.
        replay = client.status_stream(response.backend_id, last_state=rest[-1])
        assert await collect(replay) == []


async def test_dev_server_errors(dev_server: Any) -> None:
    async with Jamsocket.dev_server(dev_server.api_url) as client:
        with pytest.raises(ApiError) as info:
            await client.terminate("no-such-backend", hard=True)
        assert (info.value.http_status, info.value.code) == (404, "BackendNotFound")
        assert info.value.request_id
        with pytest.raises(ApiError) as info:
            await client.connect(spawn={"lifetime_limit_seconds": -1})
        assert info.value.http_status == 400


async def test_oversized_bodies(jam: JamsocketStub) -> None:
    async def huge(request: web.Request) -> web.Response:
        status = 200 if request.method == "GET" else 502
        return web.Response(status=status, body=b"x" * (1024 * 1024 + 10))

    jam.route("GET", "/v2/backend/{b}/status", huge)
    jam.route("POST", "/v2/service/{a}/{s}/connect", huge)
    async with jamsocket(jam) as client:
        with pytest.raises(InvalidResponse, match="too large"):
            await client.status("b1")
        with pytest.raises(ApiError, match="502"):
            await client.connect()


async def test_logs_and_errors_never_show_the_token(
    jam: JamsocketStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    jam.drop_after, jam.abort_connection = 1, True
    backend = jam.new_backend()
    await jam.run_to(backend.id, "terminated")

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text=request.headers.get("Authorization", ""))

    jam.route("POST", "/v2/service/{a}/{s}/connect", refuse)
    async with jamsocket(jam) as client:
        await collect(client.status_stream(backend.id))
        with pytest.raises(ApiError) as info:
            await client.connect()
    assert "resuming" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in str(info.value)
