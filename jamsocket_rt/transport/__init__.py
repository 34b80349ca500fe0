"""Socket.IO connections under a Session: the contract and its implementations.

- :mod:`.base`: the contract (:class:`Transport`, :class:`TransportListener`,
  :class:`ConnectTarget`).
- :mod:`.websocket`: :class:`~.websocket.WebSocketTransport`, the fast default.
- :mod:`.python_socketio`: :class:`~.python_socketio.PythonSocketIOTransport`, python-socketio
  behind the same contract, for long-polling.

The implementations are imported from their modules, so that using one does not load the
other's dependencies.
"""

from .base import (
    AckCallback,
    AckResponder,
    ConnectRefused,
    ConnectTarget,
    Transport,
    TransportListener,
)

__all__ = [
    "AckCallback",
    "AckResponder",
    "ConnectRefused",
    "ConnectTarget",
    "Transport",
    "TransportListener",
]
