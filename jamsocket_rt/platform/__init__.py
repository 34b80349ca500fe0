"""The platform API client: Jamsocket and Plane, a backend's status and its stream.

``Jamsocket`` and ``Plane`` (clients.py) connect, read the status, follow the status stream
(status_stream.py) and terminate, over aiohttp (_http.py); the requests and answers themselves
are sans-I/O, in :mod:`jamsocket_rt.protocol.api`. config.py is the one place that reads the
``JAMSOCKET_*`` variables and the platform flags of the command line.

Transport failures become a small set of errors:

- :class:`~jamsocket_rt.ApiConnectionError` (also ``ConnectionError``): the host could not be
  reached, or the connection broke.
- :class:`~jamsocket_rt.ApiTimeout` (also ``TimeoutError``): no complete answer in time.
- :class:`~jamsocket_rt.ApiError`: the server answered with an error status.
- :class:`~jamsocket_rt.InvalidResponse`: a 2xx answer that is not what it should be.

No message, log line or ``repr`` contains the bearer token, a backend token or a secret token.
"""

from .clients import Jamsocket, Plane
from .status_stream import StatusStream, fetch_status, follow_status_stream

__all__ = ["Jamsocket", "Plane", "StatusStream", "fetch_status", "follow_status_stream"]
