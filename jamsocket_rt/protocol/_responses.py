"""Parsing the platform API's HTTP responses: models from 2xx answers, ApiError from the rest."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, TypeVar

from attrs import frozen

from .._errors import ApiError
from .._models import Model

__all__ = ["MAX_BODY_SIZE", "HttpResponse", "api_error", "parse_model"]

M = TypeVar("M", bound=Model)

#: Largest response body read for a JSON answer, in bytes.
MAX_BODY_SIZE = 1024 * 1024

_MAX_ERROR_TEXT = 500


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
