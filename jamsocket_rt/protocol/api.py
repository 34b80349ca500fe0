"""Sans-I/O platform API: builds HTTP requests and parses HTTP responses, never touching a socket.

Two platforms share one shape (:class:`PlatformApi`): the Jamsocket API (:class:`JamsocketApi`)
and a self-hosted Plane controller (:class:`PlaneApi`). Each builds an :class:`HttpRequest` for
connect, status, the status stream and terminate, and parses the :class:`HttpResponse` into a
model or raises :class:`~jamsocket_rt.ApiError`. An I/O front end only has to send requests and
hand back responses.

The bearer token is attached in exactly one place, :meth:`PlatformApi.build`, and only to a URL
of the API's own origin (scheme, host and port); such a request is never redirected by the
front end, so the token cannot follow a redirect elsewhere either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from attrs import field, frozen

from .. import _converter as conv
from .._errors import ApiError, ConfigurationError
from .._models import BackendState, ConnectRequest, ConnectResponse, Model, SpawnOptions

__all__ = [
    "DEFAULT_API_URL",
    "MAX_BODY_SIZE",
    "PLANE_KEEPALIVE_READ_TIMEOUT",
    "ConfigurationError",
    "HttpRequest",
    "HttpResponse",
    "JamsocketApi",
    "PlaneApi",
    "PlatformApi",
    "api_error",
    "make_connect_request",
    "origin",
    "parse_model",
    "promises_keepalives",
    "same_origin",
    "status_request",
    "stream_request",
    "stream_url_for",
]

M = TypeVar("M", bound=Model)

DEFAULT_API_URL = "https://api.jamsocket.com"
#: Largest response body read for a JSON answer, in bytes.
MAX_BODY_SIZE = 1024 * 1024
#: Plane sends a keep-alive comment every 15 s: three missed ones mean the stream is dead.
PLANE_KEEPALIVE_READ_TIMEOUT = 45.0

_CONNECT_FIELDS = frozenset({"key", "spawn", "user", "auth"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_ERROR_TEXT = 500


def _redact_headers(headers: Mapping[str, str]) -> str:
    shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
    return repr(shown)


@frozen
class HttpRequest:
    """An HTTP request to send, as built by :class:`PlatformApi`.

    Attributes:
        method: ``GET`` or ``POST``.
        url: the absolute URL.
        headers: the headers to send (``Authorization`` is redacted from ``repr``).
        body: the body, or None.
        follow_redirects: False when the request carries the bearer token: a redirect must
            not take the token to another host.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(factory=dict, repr=_redact_headers)
    body: bytes | None = None
    follow_redirects: bool = True


@frozen
class HttpResponse:
    """An HTTP response, as an I/O front end received it.

    Attributes:
        status: the status code.
        body: the body (for a JSON answer: at most :data:`MAX_BODY_SIZE` bytes).
        content_type: the media type of ``Content-Type`` without parameters (``""`` if absent).
        reason: the reason phrase.
    """

    status: int
    body: bytes = b""
    content_type: str = ""
    reason: str = ""


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for messages: never a path, query or user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _origin_key(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def same_origin(url: str, other: str) -> bool:
    """True if both URLs have the same scheme, host and (default-normalized) port."""
    return _origin_key(url) == _origin_key(other)


def _segment(value: str, what: str, error: type[ValueError] = ValueError) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string")
    return quote(value, safe="")


def _short(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value:
        return value[:_MAX_ERROR_TEXT]
    return None


def api_error(response: HttpResponse) -> ApiError:
    """The :class:`~jamsocket_rt.ApiError` for a non-2xx response.

    Understands the Jamsocket body ``{"error": {"message", "status", "code", "id"}}`` and the
    Plane body ``{"id", "kind", "message"}``; any other body (HTML from a proxy, plain text,
    nothing) still gives a clear error from the status line. The body itself is never quoted
    beyond the API's own message.

    Args:
        response: the error response.

    Returns:
        The error to raise (not raised here).
    """
    try:
        data: Any = json.loads(response.body) if response.body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    elif isinstance(data, dict) and isinstance(data.get("error"), str):
        data = {"message": data["error"]}
    message = code = request_id = None
    if isinstance(data, dict):
        message = _short(data.get("message"))
        code = _short(data.get("code")) or _short(data.get("kind"))
        request_id = _short(data.get("id"))
    if message is None:
        message = response.reason or _phrase(response.status)
        if 300 <= response.status < 400:
            message += " (redirects are not followed for API calls)"
        elif response.body and not isinstance(data, dict):
            kind = response.content_type or "unknown type"
            message += f" (non-JSON error body: {len(response.body)} bytes of {kind})"
    return ApiError(response.status, message, code=code, request_id=request_id)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def parse_model(response: HttpResponse, cls: type[M]) -> M:
    """The model in a 2xx JSON response.

    Args:
        response: the response.
        cls: the model type expected in the body.

    Returns:
        The parsed model.

    Raises:
        ApiError: the status is not 2xx.
        InvalidResponse: the body is not JSON, or not of the expected shape (each bad field
            named).
    """
    if not 200 <= response.status < 300:
        raise api_error(response)
    return cls.from_json(response.body)


def make_connect_request(
    request: ConnectRequest | Mapping[str, Any] | None = None, /, **fields: Any
) -> ConnectRequest:
    """A :class:`~jamsocket_rt.ConnectRequest` from any of the ways a caller may give one.

    Args:
        request: a ConnectRequest, a dict of its fields, or None.
        **fields: ``key``, ``spawn`` (a bool, a SpawnOptions or a dict), ``user``, ``auth``;
            only when ``request`` is None.

    Returns:
        The request.

    Raises:
        TypeError: both ``request`` and keyword fields were given, or an unknown field.
        InvalidResponse: a field has the wrong type (every bad field is named).
    """
    if request is not None and fields:
        raise TypeError("give either a request or keyword fields, not both")
    if isinstance(request, ConnectRequest):
        return request
    data = dict(request if request is not None else fields)
    unknown = sorted(set(data) - _CONNECT_FIELDS)
    if unknown:
        raise TypeError(f"unknown connect field(s): {', '.join(unknown)}")
    if isinstance(data.get("spawn"), SpawnOptions):
        data["spawn"] = data["spawn"].to_dict()
    return conv.structure(data, ConnectRequest)


def stream_url_for(status_url: str) -> str:
    """The status stream URL of a status URL.

    Plane's public status ``.../pub/b/{id}/status`` streams at ``.../status-stream``; the
    Jamsocket API's ``.../status`` at ``.../status/stream``.
    """
    base = status_url.rstrip("/")
    if base.endswith("/status") and "/pub/b/" in base:
        return base + "-stream"
    return base + "/stream"


def promises_keepalives(stream_url: str) -> bool:
    """True for a Plane status stream, which sends a keep-alive comment every 15 s.

    Only then is a read timeout safe: the Jamsocket dev server's stream is silent between
    statuses, possibly for a long time.
    """
    return urlsplit(stream_url).path.rstrip("/").endswith("/status-stream")


def status_request(status_url: str) -> HttpRequest:
    """A GET of a status URL (it needs no authorization, so none is sent)."""
    return HttpRequest("GET", status_url, {"Accept": "application/json"})


def stream_request(stream_url: str, last_event_id: str = "") -> HttpRequest:
    """A GET of a status stream URL; ``Last-Event-ID`` is sent when resuming after an ``id:``."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return HttpRequest("GET", stream_url, headers)


def _check_base_url(url: str, what: str) -> str:
    try:
        conv.check_http_url(url)
    except conv.FieldError:
        raise ConfigurationError(f"{what} must be an absolute http:// or https:// URL") from None
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{what} must not have a query or fragment")
    return url.rstrip("/")


class PlatformApi:
    """What Jamsocket and Plane have in common: URLs, the token rule, and response parsing.

    Subclasses say where the endpoints are and how a connect body looks.
    """

    def __init__(self, base_url: str, token: str | None, *, what: str) -> None:
        self.base_url = _check_base_url(base_url, what)
        self._token = token or None

    def url(self, *segments: str) -> str:
        """``base_url`` joined with path segments (each percent-encoded)."""
        return self.base_url + "".join("/" + segment for segment in segments)

    def build(
        self, method: str, url: str, *, body: bytes | None = None, auth: bool = False
    ) -> HttpRequest:
        """The one place a request gets the bearer token.

        The token is attached only when ``auth`` is asked for and ``url`` has the API's own
        origin; such a request is marked not to follow redirects.
        """
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        authorized = auth and self._token is not None and same_origin(url, self.base_url)
        if authorized:
            headers["Authorization"] = f"Bearer {self._token}"
        return HttpRequest(method, url, headers, body, follow_redirects=not authorized)

    # connect

    def connect_request(self, request: ConnectRequest) -> HttpRequest:
        """The request for ``connect``."""
        raise NotImplementedError

    def parse_connect(self, response: HttpResponse) -> ConnectResponse:
        """The ConnectResponse of a connect answer.

        Raises:
            ApiError: the API answered with an error status.
            InvalidResponse: the body is not a valid ConnectResponse.
        """
        return parse_model(response, ConnectResponse)

    # status

    def status_url(self, backend_id: str) -> str:
        """The public status URL of a backend."""
        raise NotImplementedError

    def stream_url(self, backend_id: str) -> str:
        """The public status stream URL of a backend."""
        return stream_url_for(self.status_url(backend_id))

    def status_request(self, backend_id: str) -> HttpRequest:
        """The request for the latest status of a backend (no authorization needed)."""
        return status_request(self.status_url(backend_id))

    def parse_status(self, response: HttpResponse) -> BackendState:
        """The BackendState of a status answer.

        Raises:
            ApiError: the API answered with an error status (404: unknown backend).
            InvalidResponse: the body is not a valid BackendState.
        """
        return parse_model(response, BackendState)

    def stream_request(self, backend_id: str, last_event_id: str = "") -> HttpRequest:
        """The request for a backend's status stream (no authorization needed)."""
        return stream_request(self.stream_url(backend_id), last_event_id)

    # terminate

    def terminate_request(self, backend_id: str, *, hard: bool = False) -> HttpRequest:
        """The request to terminate a backend, softly (SIGTERM) or hard (SIGKILL)."""
        raise NotImplementedError

    def parse_terminate(self, response: HttpResponse) -> None:
        """Check a terminate answer; its body is not used.

        Raises:
            ApiError: the API answered with an error status.
        """
        if not 200 <= response.status < 300:
            raise api_error(response)


class JamsocketApi(PlatformApi):
    """The Jamsocket platform API (or the ``jamsocket dev`` server, which imitates it).

    Args:
        account: the account name.
        service: the service name, or ``"{service}/{environment}"``.
        token: the API token, sent as a bearer token to ``api_url`` only.
        api_url: the API's base URL.

    Raises:
        ConfigurationError: a missing name or a malformed URL.
    """

    def __init__(
        self, *, account: str, service: str, token: str, api_url: str = DEFAULT_API_URL
    ) -> None:
        super().__init__(api_url, token, what="api_url")
        self.account = account
        self.service = service
        self._account = _segment(account, "account", ConfigurationError)
        service_name, _, environment = service.partition("/") if service else ("", "", "")
        self._service = [_segment(service_name, "service", ConfigurationError)]
        if environment:
            self._service.append(_segment(environment, "environment", ConfigurationError))

    def __repr__(self) -> str:
        return (
            f"JamsocketApi(account={self.account!r}, service={self.service!r}, "
            f"api_url={self.base_url!r})"
        )

    def connect_request(self, request: ConnectRequest) -> HttpRequest:
        url = self.url("v2", "service", self._account, *self._service, "connect")
        return self.build("POST", url, body=request.to_json().encode(), auth=True)

    def status_url(self, backend_id: str) -> str:
        return self.url("v2", "backend", _segment(backend_id, "backend_id"), "status")

    def terminate_request(self, backend_id: str, *, hard: bool = False) -> HttpRequest:
        url = self.url("v2", "backend", _segment(backend_id, "backend_id"), "terminate")
        body = conv.dumps_compact({"hard": hard}).encode()
        return self.build("POST", url, body=body, auth=True)


class PlaneApi(PlatformApi):
    """A self-hosted Plane controller.

    A ConnectRequest is mapped to Plane's body: ``key`` becomes ``{"name": key}`` (with
    ``namespace``), ``spawn`` becomes ``spawn_config`` (``cluster``, ``lifetime_limit_seconds``,
    ``max_idle_seconds``, and ``executable`` with the image plus ``env``, ``resource_limits``
    and ``mount``), ``user`` and ``auth`` are passed as they are. The image is the connect's
    own, else the default ``image``; ``spawn.tag``, when given, replaces the image's tag.
    Without any image, a connect can only reach a backend that already holds the key.

    Args:
        controller_url: the controller's base URL (``/ctrl`` and ``/pub`` live under it). A
            user name in the URL (``https://TOKEN@host``) is taken as the bearer token, as
            Plane's own client does.
        image: the default container image to spawn.
        token: a bearer token for a controller behind an authenticating proxy.
        namespace: the key namespace (Plane's default is the empty namespace).

    Raises:
        ConfigurationError: a malformed URL.
    """

    def __init__(
        self,
        controller_url: str,
        *,
        image: str | None = None,
        token: str | None = None,
        namespace: str | None = None,
    ) -> None:
        parts = urlsplit(controller_url)
        if parts.username and token is None:
            token = parts.username
        if parts.username or parts.password:
            # Keep credentials out of every URL we build and every message that quotes one.
            host = parts.netloc.rpartition("@")[2]
            controller_url = parts._replace(netloc=host).geturl()
        super().__init__(controller_url, token, what="controller_url")
        self.image = image
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"PlaneApi(controller_url={self.base_url!r}, image={self.image!r})"

    def connect_body(self, request: ConnectRequest, *, image: str | None = None) -> dict[str, Any]:
        """Plane's connect body for ``request``.

        Args:
            request: the connect request.
            image: the image to spawn, instead of the default one.

        Raises:
            ConfigurationError: a spawn is asked for (``spawn`` true or options) but no image
                is known.
        """
        body: dict[str, Any] = {}
        if request.key is not None:
            key: dict[str, Any] = {"name": request.key}
            if self.namespace is not None:
                key["namespace"] = self.namespace
            body["key"] = key
        spawn = request.spawn
        image = image or self.image
        if spawn is not False:
            options = spawn if isinstance(spawn, SpawnOptions) else SpawnOptions()
            if image is not None:
                body["spawn_config"] = _spawn_config(options, image)
            elif spawn is not None:
                raise ConfigurationError(
                    "Plane cannot spawn without an image: pass image= to Plane() or to connect()"
                )
        if request.user is not None:
            body["user"] = request.user
        if request.auth is not None:
            body["auth"] = request.auth
        return body

    def connect_request(self, request: ConnectRequest, *, image: str | None = None) -> HttpRequest:
        body = conv.dumps_compact(self.connect_body(request, image=image)).encode()
        return self.build("POST", self.url("ctrl", "connect"), body=body, auth=True)

    def status_url(self, backend_id: str) -> str:
        return self.url("pub", "b", _segment(backend_id, "backend_id"), "status")

    def terminate_request(self, backend_id: str, *, hard: bool = False) -> HttpRequest:
        action = "hard-terminate" if hard else "soft-terminate"
        url = self.url("ctrl", "b", _segment(backend_id, "backend_id"), action)
        return self.build("POST", url, auth=True)


def _spawn_config(options: SpawnOptions, image: str) -> dict[str, Any]:
    if options.tag:
        image = _with_tag(image, options.tag)
    executable: dict[str, Any] = {"image": image}
    if options.executable is not None:
        executable.update(options.executable.to_dict())
    config: dict[str, Any] = {"executable": executable}
    for name in ("cluster", "lifetime_limit_seconds", "max_idle_seconds"):
        value = getattr(options, name)
        if value is not None:
            config[name] = value
    return config


def _with_tag(image: str, tag: str) -> str:
    """``image`` with its tag (and digest) replaced by ``tag``.

    A colon in the last path component starts the tag; one before it belongs to a registry
    port (``registry:5000/app``).
    """
    name = image.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return f"{name}:{tag}"
