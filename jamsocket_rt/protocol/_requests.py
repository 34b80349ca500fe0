"""Building the platform API's HTTP requests: the request type, URLs and origins, connect bodies.

Nothing here sends anything: an I/O front end sends the :class:`HttpRequest` objects built
here (and by :mod:`._platforms`) as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from attrs import field, frozen

from .. import _converter as conv
from .._errors import ConfigurationError
from .._models import ConnectRequest, SpawnOptions

__all__ = [
    "DEFAULT_API_URL",
    "PLANE_KEEPALIVE_READ_TIMEOUT",
    "HttpRequest",
    "check_base_url",
    "make_connect_request",
    "origin",
    "promises_keepalives",
    "same_origin",
    "segment",
    "status_request",
    "stream_request",
    "stream_url_for",
]

DEFAULT_API_URL = "https://api.jamsocket.com"
#: Plane sends a keep-alive comment every 15 s: three missed ones mean the stream is dead.
PLANE_KEEPALIVE_READ_TIMEOUT = 45.0

_CONNECT_FIELDS = frozenset({"key", "spawn", "user", "auth"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _redact_headers(headers: Mapping[str, str]) -> str:
    shown = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in headers.items()}
    return repr(shown)


@frozen
class HttpRequest:
    """An HTTP request to send, as built by :class:`~jamsocket_rt.protocol.api.PlatformApi`.

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


def segment(value: str, what: str, error: type[ValueError] = ValueError) -> str:
    """``value`` percent-encoded as one URL path segment.

    Raises:
        ValueError (or ``error``): ``value`` is not a non-empty string (``what`` is named).
    """
    if not isinstance(value, str) or not value:
        raise error(f"{what} must be a non-empty string")
    return quote(value, safe="")


def check_base_url(url: str, what: str) -> str:
    """``url`` without a trailing slash, once it is known to be usable as an API's base URL.

    Args:
        url: the URL to check.
        what: the name given to it in the error (a parameter, flag or variable).

    Raises:
        ConfigurationError: not an absolute http(s) URL, or it has a query or fragment.
    """
    try:
        conv.check_http_url(url)
    except conv.FieldError:
        raise ConfigurationError(f"{what} must be an absolute http:// or https:// URL") from None
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{what} must not have a query or fragment")
    return url.rstrip("/")


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
