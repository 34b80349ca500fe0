"""jamsocket_rt: the Python real-time client for Jamsocket / Plane session backends.

::

    import jamsocket_rt as jrt

    async with jrt.Jamsocket.from_env() as api:
        response = await api.connect(key="room")
    async with jrt.Session(response) as s:
        print(await s.call("echo", "hello"))

The public names are all here; modules starting with ``_`` are private.
"""

from ._errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    AuthFailed,
    BackendTerminated,
    ConfigurationError,
    ConnectionLost,
    ConnectRefused,
    Disconnected,
    DisconnectReason,
    EventStreamTooLarge,
    InvalidResponse,
    JamsocketError,
    ReadyTimeout,
    ReconnectFailed,
    SendQueueFull,
    SessionClosed,
    StreamOverflow,
    TokenExpired,
)
from ._models import (
    BackendState,
    BackendStatus,
    ConnectRequest,
    ConnectResponse,
    ExecutableOptions,
    ResourceLimits,
    SpawnOptions,
    TerminationKind,
    TerminationReason,
)
from .asyncio.namespace import Namespace
from .asyncio.session import EventStream, Session, Ticker
from .platform import Jamsocket, Plane, StatusStream, fetch_status, follow_status_stream
from .protocol.engineio import ProtocolError
from .protocol.lifecycle import State as SessionState
from .protocol.options import SessionOptions
from .protocol.session import LatencyEstimate
from .sync.platform import SyncJamsocket, SyncPlane
from .sync.session import SyncSession

__version__ = "0.1.0"

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "ApiTimeout",
    "AuthFailed",
    "BackendState",
    "BackendStatus",
    "BackendTerminated",
    "ConfigurationError",
    "ConnectRefused",
    "ConnectRequest",
    "ConnectResponse",
    "ConnectionLost",
    "DisconnectReason",
    "Disconnected",
    "EventStream",
    "EventStreamTooLarge",
    "ExecutableOptions",
    "InvalidResponse",
    "Jamsocket",
    "JamsocketError",
    "LatencyEstimate",
    "Namespace",
    "Plane",
    "ProtocolError",
    "ReadyTimeout",
    "ReconnectFailed",
    "ResourceLimits",
    "SendQueueFull",
    "Session",
    "SessionClosed",
    "SessionOptions",
    "SessionState",
    "SpawnOptions",
    "StatusStream",
    "StreamOverflow",
    "SyncJamsocket",
    "SyncPlane",
    "SyncSession",
    "TerminationKind",
    "TerminationReason",
    "Ticker",
    "TokenExpired",
    "__version__",
    "fetch_status",
    "follow_status_stream",
]
