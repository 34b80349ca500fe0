"""jamsocket_rt: the Python real-time client for Jamsocket / Plane session backends."""

from ._errors import (
    ApiError,
    BackendTerminated,
    InvalidResponse,
    JamsocketError,
    ReadyTimeout,
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

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "BackendState",
    "BackendStatus",
    "BackendTerminated",
    "ConnectRequest",
    "ConnectResponse",
    "ExecutableOptions",
    "InvalidResponse",
    "JamsocketError",
    "ReadyTimeout",
    "ResourceLimits",
    "SpawnOptions",
    "TerminationKind",
    "TerminationReason",
    "TokenExpired",
    "__version__",
]
