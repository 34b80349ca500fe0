"""The two platforms' endpoints: :class:`PlatformApi` and its Jamsocket and Plane forms.

Each builds the :class:`~jamsocket_rt.protocol.api.HttpRequest` of connect, status, the status
stream and terminate, and parses their answers. The bearer token is attached in exactly one
place, :meth:`PlatformApi.build`, and only to a URL of the API's own origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .. import _converter as conv
from .._errors import ConfigurationError
from .._models import BackendState, ConnectRequest, ConnectResponse, SpawnOptions
from ._requests import (
    DEFAULT_API_URL,
    HttpRequest,
    check_base_url,
    same_origin,
    segment,
    status_request,
    stream_request,
    stream_url_for,
)
from ._responses import HttpResponse, api_error, parse_model

__all__ = ["JamsocketApi", "PlaneApi", "PlatformApi"]


class PlatformApi:
    """What Jamsocket and Plane have in common: URLs, the token rule, and response parsing.

    Subclasses say where the endpoints are and how a connect body looks.
    """

    def __init__(self, base_url: str, token: str | None, *, what: str) -> None:
        self.base_url = check_base_url(base_url, what)
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
        self._account = segment(account, "account", ConfigurationError)
        service_name, _, environment = service.partition("/") if service else ("", "", "")
        self._service = [segment(service_name, "service", ConfigurationError)]
        if environment:
            self._service.append(segment(environment, "environment", ConfigurationError))

    def __repr__(self) -> str:
        return (
            f"JamsocketApi(account={self.account!r}, service={self.service!r}, "
            f"api_url={self.base_url!r})"
        )

    def connect_request(self, request: ConnectRequest) -> HttpRequest:
        url = self.url("v2", "service", self._account, *self._service, "connect")
        return self.build("POST", url, body=request.to_json().encode(), auth=True)

    def status_url(self, backend_id: str) -> str:
        return self.url("v2", "backend", segment(backend_id, "backend_id"), "status")

    def terminate_request(self, backend_id: str, *, hard: bool = False) -> HttpRequest:
        url = self.url("v2", "backend", segment(backend_id, "backend_id"), "terminate")
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
        return self.url("pub", "b", segment(backend_id, "backend_id"), "status")

    def terminate_request(self, backend_id: str, *, hard: bool = False) -> HttpRequest:
        action = "hard-terminate" if hard else "soft-terminate"
        url = self.url("ctrl", "b", segment(backend_id, "backend_id"), action)
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
