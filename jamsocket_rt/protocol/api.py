"""Sans-I/O platform API: builds HTTP requests and parses HTTP responses, never touching a socket.

Two platforms share one shape (:class:`PlatformApi`): the Jamsocket API (:class:`JamsocketApi`)
and a self-hosted Plane controller (:class:`PlaneApi`). Each builds an :class:`HttpRequest` for
connect, status, the status stream and terminate, and parses the :class:`HttpResponse` into a
model or raises :class:`~jamsocket_rt.ApiError`. An I/O front end only has to send requests and
hand back responses.

The bearer token is attached in exactly one place, :meth:`PlatformApi.build`, and only to a URL
of the API's own origin (scheme, host and port); such a request is never redirected by the
front end, so the token cannot follow a redirect elsewhere either.

This module is the public face of three private ones: :mod:`._requests` (the request type,
URLs, connect bodies), :mod:`._responses` (the response type, errors, models) and
:mod:`._platforms` (the Jamsocket and Plane endpoints).
"""

from __future__ import annotations

from .._errors import ConfigurationError
from ._platforms import JamsocketApi, PlaneApi, PlatformApi
from ._requests import (
    DEFAULT_API_URL,
    PLANE_KEEPALIVE_READ_TIMEOUT,
    HttpRequest,
    make_connect_request,
    origin,
    promises_keepalives,
    same_origin,
    status_request,
    stream_request,
    stream_url_for,
)
from ._responses import MAX_BODY_SIZE, HttpResponse, api_error, parse_model

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
