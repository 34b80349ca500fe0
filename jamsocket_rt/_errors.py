"""The exception hierarchy: everything the library raises on purpose derives from JamsocketError.

::

    JamsocketError
    ├── InvalidResponse (also ValueError)   data from a server does not fit the expected shape
    ├── ApiError                            the platform API answered with an error status
    ├── BackendTerminated                   the session backend has ended
    ├── ReadyTimeout (also TimeoutError)    the backend did not become ready in time
    ├── TokenExpired                        the proxy no longer knows the token (HTTP 410)
    ├── ConfigurationError (also ValueError) a client or option was set up wrongly
    ├── ApiConnectionError (ConnectionError) the API or status host could not be reached
    ├── ApiTimeout (also TimeoutError)      the API did not answer in time
    ├── ConnectRefused (ConnectionRefusedError) the backend refused the Socket.IO CONNECT
    ├── ConnectionLost (ConnectionError)    the connection dropped under a waiting call
    ├── Disconnected (ConnectionError)      the connection ended; ``reason`` says why
    ├── ReconnectFailed (ConnectionError)   ``reconnect_attempts`` attempts failed in a row
    ├── SessionClosed                       the session was closed while waiting
    ├── StreamOverflow                      a stream() consumer fell too far behind
    └── SendQueueFull                       too many sends are waiting for a connection

InvalidResponse has one subclass, EventStreamTooLarge (a status stream line over its limit).

Messages never contain a token, a secret token or a bearer token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._models import BackendState, TerminationReason


class JamsocketError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidResponse(JamsocketError, ValueError):
    """Data received from a server (or given by the caller) does not fit the expected type.

    Attributes:
        errors: one ``"field.path: what was expected"`` line per bad field.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        self.errors: list[str] = list(errors or [])
        if self.errors:
            message = message + ": " + "; ".join(self.errors)
        super().__init__(message)


class ApiError(JamsocketError):
    """The platform API (Jamsocket or a Plane controller) answered with an error.

    Attributes:
        http_status: the HTTP status code.
        code: the API's machine-readable error code, when it gave one.
        message: the API's human-readable message (or the reason phrase).
        request_id: the API's id for the failed request, useful for support.
    """

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.message = message
        self.request_id = request_id
        text = f"HTTP {http_status}"
        if code:
            text += f" [{code}]"
        text += f": {message}"
        if http_status == 429:
            text += " (rate or plan limit reached: slow down, or check the account's plan)"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)

    @property
    def is_rate_limit(self) -> bool:
        """True when the API refused because of a rate or plan limit (HTTP 429)."""
        return self.http_status == 429


class BackendTerminated(JamsocketError):
    """The session backend has terminated; nothing more can be sent to it.

    Attributes:
        state: the terminal BackendState (None when only the proxy told us).
        reason: ``state.termination_reason``, for convenience.
    """

    def __init__(self, state: BackendState | None, message: str | None = None) -> None:
        self.state = state
        self.reason: TerminationReason | str | None = (
            state.termination_reason if state is not None else None
        )
        if message is None:
            message = "the session backend has terminated"
            if state is not None:
                details = []
                if state.termination_reason is not None:
                    details.append(f"reason={_value(state.termination_reason)}")
                if state.termination_kind is not None:
                    details.append(f"kind={_value(state.termination_kind)}")
                if state.exit_error is not None:
                    details.append(f"exit_error={state.exit_error}")
                if details:
                    message += " (" + ", ".join(details) + ")"
        super().__init__(message)


class ReadyTimeout(JamsocketError, TimeoutError):
    """The session backend did not become ready within the allowed time."""


class TokenExpired(JamsocketError):
    """The proxy answered 410 Gone: the token is unknown, expired or its backend ended.

    Call connect again (with the same key) for a new token; a Session given a ``connect``
    callable does that by itself.
    """


class ApiConnectionError(JamsocketError, ConnectionError):
    """The host could not be reached, or the connection broke before a complete answer.

    Attributes:
        url: the origin (``scheme://host:port``) that failed.
    """

    def __init__(self, message: str, url: str) -> None:
        self.url = url
        super().__init__(message)


class ApiTimeout(JamsocketError, TimeoutError):
    """No complete answer within the timeout (or no data within a stream's read timeout).

    Attributes:
        url: the origin (``scheme://host:port``) that did not answer.
        timeout: the timeout that expired, in seconds (None if unknown).
    """

    def __init__(self, message: str, url: str, timeout: float | None) -> None:
        self.url = url
        self.timeout = timeout
        super().__init__(message)


class ConfigurationError(JamsocketError, ValueError):
    """A client was configured wrongly: a missing or malformed setting (named in the message)."""


class AuthFailed(ConfigurationError):
    """The ``auth`` function raised, or returned something other than a mapping.

    A CONNECT cannot be sent without its auth, so the connection attempt is final: raised by
    ``connect()``, or, on a reconnect, what every waiting call and ``on_error`` receive. The
    function's own exception, if any, is the ``__cause__``.
    """


class EventStreamTooLarge(InvalidResponse):
    """A line or an event of a server-sent event stream is over the configured limit.

    Attributes:
        limit: the limit that was exceeded, in bytes.
    """

    def __init__(self, message: str, limit: int) -> None:
        self.limit = limit
        super().__init__(message)


class ConnectRefused(JamsocketError, ConnectionRefusedError):
    """The server answered the Socket.IO CONNECT with CONNECT_ERROR (e.g. its auth check failed).

    Retrying with the same ``auth`` is unlikely to help.

    Attributes:
        data: the server's CONNECT_ERROR payload (often ``{"message": ..., "data": ...}``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class ConnectionLost(JamsocketError, ConnectionError):
    """The connection dropped while a call was waiting for its acknowledgement.

    The call may or may not have reached the backend. Pass ``retry=True`` to ``call`` to have
    it sent again after the reconnect instead (at-least-once).
    """


#: Why a connection ended, in socket.io-client's words (its "disconnect" event's reason).
DisconnectReason = Literal[
    "io server disconnect",  # the server disconnected the socket: no reconnect
    "io client disconnect",  # the program closed it
    "ping timeout",  # no ping from the server within its interval plus timeout
    "transport close",  # the connection was closed (by the peer, a proxy, the network)
    "transport error",  # the connection failed with an error
    "parse error",  # the server sent something that is not Engine.IO / Socket.IO
]


class TransportBroke(ConnectionResetError):
    """A transport's loss with an error of the connection itself (``"transport error"``),
    as opposed to one that was closed (a plain ConnectionResetError, ``"transport close"``)."""


class Disconnected(JamsocketError, ConnectionError):
    """The connection ended: what ``on_disconnect`` callbacks receive.

    A ping timeout is also a :class:`TimeoutError`. The underlying error, when there is one,
    is the ``__cause__``.

    Attributes:
        reason: why, in socket.io-client's words (see :data:`DisconnectReason`).
    """

    def __init__(self, message: str, reason: DisconnectReason) -> None:
        super().__init__(message)
        self.reason: DisconnectReason = reason

    @staticmethod
    def of(error: BaseException | None, reason: DisconnectReason | None = None) -> Disconnected:
        """The Disconnected for a transport's loss ``error`` (itself if it is one already).

        Args:
            error: what the transport reported (None: nothing more is known).
            reason: the reason, when the caller knows it (else told from ``error``'s type).

        Returns:
            A Disconnected whose ``__cause__`` is ``error``.
        """
        if isinstance(error, Disconnected):
            return error
        why = reason or disconnect_reason(error)
        message = str(error) if error is not None else ""
        if not message:
            message = _CLOSED_BY_US if why == "io client disconnect" else "the connection ended"
        if why not in message:
            message += f" ({why})"
        kind = _TimedOut if why == "ping timeout" else Disconnected
        disconnected = kind(message, why)
        disconnected.__cause__ = error
        return disconnected


_CLOSED_BY_US = "the program closed the connection"


class _TimedOut(Disconnected, TimeoutError):
    """A Disconnected for a ping timeout (a TimeoutError too, as the transport reports it)."""


def disconnect_reason(error: BaseException | None) -> DisconnectReason:
    """What a transport's loss ``error`` means, in socket.io-client's words.

    The transports report a server's DISCONNECT as ConnectionAbortedError, a missed ping as
    TimeoutError, data they cannot parse as a ValueError (ProtocolError), a failed connection
    as TransportBroke, and any other close as ConnectionResetError.
    """
    if isinstance(error, Disconnected):
        return error.reason
    if isinstance(error, ConnectionAbortedError):
        return "io server disconnect"
    if isinstance(error, TimeoutError):
        return "ping timeout"
    if isinstance(error, ValueError):
        return "parse error"
    if isinstance(error, TransportBroke) or not isinstance(error, ConnectionError):
        return "transport error" if error is not None else "transport close"
    return "transport close"


class ReconnectFailed(JamsocketError, ConnectionError):
    """``reconnect_attempts`` reconnect attempts failed in a row: the session gave up.

    Every waiting call, ``wait_for`` and stream fails with it, later uses raise it, and
    ``on_error`` callbacks receive it. The last attempt's error is the ``__cause__``.

    Attributes:
        attempts: how many attempts failed in a row.
    """

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(
            f"reconnecting failed {attempts} time{'s' if attempts != 1 else ''} in a row; "
            f"the last attempt: {type(last).__name__}: {last}"
        )
        self.attempts = attempts
        self.__cause__ = last


class SessionClosed(JamsocketError):
    """The session was closed (by ``close()``) while this operation was waiting."""


class StreamOverflow(JamsocketError):
    """A ``stream()`` consumer fell more than ``maxsize`` events behind (policy "error")."""


class SendQueueFull(JamsocketError):
    """The bounded queue of sends waiting for a connection is full; nothing was queued."""


def _value(member: object) -> str:
    return str(getattr(member, "value", member))
