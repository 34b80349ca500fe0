"""The platform client's names where they used to live (see :mod:`jamsocket_rt.platform`)."""

from __future__ import annotations

from ._errors import ApiConnectionError, ApiTimeout, ConfigurationError
from .platform._http import DEFAULT_TIMEOUT
from .platform.clients import Jamsocket, Plane
from .platform.status_stream import (
    DEFAULT_MAX_RETRIES,
    StatusStream,
    fetch_status,
    follow_status_stream,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ApiConnectionError",
    "ApiTimeout",
    "ConfigurationError",
    "Jamsocket",
    "Plane",
    "StatusStream",
    "fetch_status",
    "follow_status_stream",
]
