"""The sans-I/O core: parsers and request builders that never touch a socket.

The asyncio front ends (:mod:`jamsocket_rt._api` and the Session) only move bytes; every rule
about what to send and what a server's answer means lives here and is tested without a network.

- :mod:`.api`: requests to the Jamsocket API or a Plane controller, and parsing their answers.
- :mod:`.sse`: the server-sent events parser and the backend status decoder.
"""

from .api import (
    DEFAULT_API_URL,
    ConfigurationError,
    HttpRequest,
    HttpResponse,
    JamsocketApi,
    PlaneApi,
    PlatformApi,
)
from .sse import Event, EventStreamParser, EventStreamTooLarge, StatusDecoder

__all__ = [
    "DEFAULT_API_URL",
    "ConfigurationError",
    "Event",
    "EventStreamParser",
    "EventStreamTooLarge",
    "HttpRequest",
    "HttpResponse",
    "JamsocketApi",
    "PlaneApi",
    "PlatformApi",
    "StatusDecoder",
]
