"""The asyncio front end of the platform API: :class:`Jamsocket`, :class:`Plane`, status streams.

A thin layer over the sans-I/O :mod:`jamsocket_rt.protocol.api` and
:mod:`jamsocket_rt.protocol.sse`: it sends the requests they build with aiohttp, hands the
answers back to them, and turns transport failures into a small set of errors:

- :class:`ApiConnectionError` (also ``ConnectionError``): the host could not be reached, or the
  connection broke.
- :class:`ApiTimeout` (also ``TimeoutError``): no complete answer within the timeout.
- :class:`~jamsocket_rt.ApiError`: the server answered with an error status.
- :class:`~jamsocket_rt.InvalidResponse`: a 2xx answer that is not what it should be.

No message, log line or ``repr`` contains the bearer token, a backend token or a secret token.

The code lives in three private modules, re-exported here: :mod:`._http_client` (sending
requests with aiohttp), :mod:`._status_stream` (following and reading statuses) and
:mod:`._clients` (the Jamsocket and Plane clients).
"""

from __future__ import annotations

from ._clients import Jamsocket, Plane
from ._errors import ApiConnectionError, ApiTimeout, ConfigurationError
from ._http_client import DEFAULT_TIMEOUT
from ._status_stream import (
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
