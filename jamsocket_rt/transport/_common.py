"""What both transports share: the lifecycle rules of the contract and safe error messages."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from yarl import URL

from .base import AckCallback, AckResponder, ConnectTarget, NamespaceListener, TransportListener


class Phase(enum.Enum):
    """Where a transport is in its one life."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"  # transport_lost was reported
    CLOSED = "closed"  # close() was called: nothing is reported any more


# The phases as module constants: looking an enum member up on its class, once per message,
# costs more than the per-message paths can afford.
NEW = Phase.NEW
CONNECTING = Phase.CONNECTING
CONNECTED = Phase.CONNECTED
LOST = Phase.LOST
CLOSED = Phase.CLOSED


def open_file_limit_hint() -> str:
    """What to do when a connection failed with EMFILE: the limit in force, and its remedy."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return "the process's open-file limit is reached"
    return (
        f"the process's open-file limit (RLIMIT_NOFILE) of {soft} is reached, each connection "
        f"takes one; raise it up to the hard limit {hard} with "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard)) or `ulimit -n` before starting, "
        "and the hard limit as root"
    )


def host_of(target: ConnectTarget) -> str:
    """``host[:port]`` of the target: what error messages may name (the path holds the token)."""
    url = URL(target.origin)
    host = url.host or "?"
    return f"{host}:{url.port}" if url.explicit_port else host


def redact(text: str, target: ConnectTarget) -> str:
    """``text`` with the token-bearing Socket.IO path cut out, however it was quoted."""
    path = target.socketio_path.strip("/")
    if not path:
        return text
    for variant in {path, URL.build(path="/" + path).raw_path.lstrip("/")}:
        text = text.replace(variant, "…")
    return text


def query_string(target: ConnectTarget) -> str:
    """``target.query`` URL-encoded as socket.io-client does (encodeURIComponent: ``%20``, not
    ``+``), or "" when there is none."""
    query = target.query
    return urlencode(query, quote_via=quote) if query else ""


def socketio_path(target: ConnectTarget) -> str:
    """The Socket.IO path with one leading and one trailing slash, as socket.io-client sends it."""
    return "/" + target.socketio_path.strip("/") + "/"


#: Shared by every transport without extra namespaces; never changed (see TransportCore).
_NONE: dict[str, Any] = {}


class TransportCore:
    """The contract's rules that do not depend on how bytes move.

    Subclasses call :meth:`_begin_connect` / :meth:`_connected`, deliver through
    :meth:`_deliver_event` / :meth:`_deliver_ack`, and report losses through :meth:`_lose`, which
    guarantees ``transport_lost`` at most once and never after ``close()``.
    """

    __slots__ = ("_held", "_joining", "_listener", "_loop", "_namespaces", "_phase", "_sid")

    def __init__(self) -> None:
        # Extra namespaces by name, and their CONNECTs not answered yet; a transport without
        # any (most) shares one empty dict until it has.
        self._namespaces: dict[str, NamespaceListener] = _NONE
        self._joining: dict[str, asyncio.Future[str]] = _NONE
        self._phase = NEW
        self._listener: TransportListener | None = None
        self._sid: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Events held back until connect() has returned (see _hold_events).
        self._held: list[tuple[str, list[Any], AckResponder | None]] | None = None

    @property
    def sid(self) -> str | None:
        """The Socket.IO session id once connected."""
        return self._sid

    @property
    def connected(self) -> bool:
        """True between a successful ``connect`` and the loss or ``close``."""
        return self._phase is CONNECTED

    def _begin_connect(self, listener: TransportListener) -> asyncio.AbstractEventLoop:
        if self._phase is not NEW:
            raise RuntimeError("a transport connects once; make a new one to reconnect")
        self._phase = CONNECTING
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _check_can_send(self) -> None:
        if self._phase is not CONNECTED:
            raise ConnectionError(f"the transport is {self._phase.value}, not connected")

    def _lose(self, error: BaseException | None) -> bool:
        """Reports the loss once; returns False when it was already reported or closed."""
        if self._phase is not CONNECTED:
            return False
        if self._held:
            # Lost before the held-back events were released (connect() had just returned):
            # they came before the loss, so they go first (their offsets are already recorded).
            self._release_events()
        self._phase = LOST
        self._drop_namespaces()
        self._on_lost()
        listener = self._listener
        if listener is not None:
            try:
                listener.transport_lost(error)
            except Exception as exc:  # noqa: BLE001 (reported to the loop's exception handler)
                self._report_error(exc, "transport_lost")
        return True

    def _on_lost(self) -> None:
        """Hook: release what must go at once when the connection is lost."""

    # ----------------------------------------------------------------------- namespaces

    def _join(self, nsp: str, listener: NamespaceListener) -> asyncio.Future[str]:
        """Registers an extra namespace whose CONNECT is being sent; the future gets its sid.

        Raises:
            ConnectionError: the transport is not connected.
            ValueError: the namespace is already open here.
        """
        self._check_can_send()
        if nsp in self._namespaces:
            raise ValueError(f"namespace {nsp!r} is already open on this connection")
        assert self._loop is not None
        future: asyncio.Future[str] = self._loop.create_future()
        if self._namespaces is _NONE:
            self._namespaces, self._joining = {}, {}
        self._namespaces[nsp] = listener
        self._joining[nsp] = future
        return future

    def _leave(self, nsp: str) -> None:
        self._namespaces.pop(nsp, None)
        future = self._joining.pop(nsp, None)
        if future is not None and not future.done():
            future.set_exception(ConnectionError(f"namespace {nsp!r} was closed"))

    def _namespace_connected(self, nsp: str, sid: str) -> None:
        future = self._joining.pop(nsp, None)
        if future is not None and not future.done():
            future.set_result(sid)

    def _namespace_refused(self, nsp: str, error: BaseException) -> None:
        self._namespaces.pop(nsp, None)
        future = self._joining.pop(nsp, None)
        if future is not None and not future.done():
            future.set_exception(error)

    def _namespace_ended(self, nsp: str, reason: str) -> None:
        listener = self._namespaces.pop(nsp, None)
        self._leave(nsp)
        if listener is not None:
            try:
                listener.namespace_lost(reason)
            except Exception as exc:  # noqa: BLE001 (reported to the loop's exception handler)
                self._report_error(exc, "namespace_lost")

    def _namespace_event(
        self, nsp: str, name: str, args: list[Any], ack: AckResponder | None
    ) -> None:
        listener = self._namespaces.get(nsp)
        if listener is None:
            return
        try:
            listener.transport_event(name, args, ack)
        except Exception as exc:  # noqa: BLE001
            self._report_error(exc, f"transport_event({name!r}) of {nsp}")

    def _drop_namespaces(self) -> None:
        """The connection is gone: CONNECTs in flight fail, listeners are forgotten."""
        self._namespaces = _NONE
        joining, self._joining = self._joining, _NONE
        for nsp, future in joining.items():
            if not future.done():
                future.set_exception(ConnectionError(f"the connection closed before {nsp} joined"))

    def _hold_events(self) -> None:
        """Holds back events from now until :meth:`_release_events` (for a library that
        delivers events while its connect() is still running)."""
        self._held = []

    def _release_events(self) -> None:
        """Delivers the held-back events, in order, and stops holding them back."""
        held, self._held = self._held, None
        if self._phase is CONNECTED:
            for name, args, ack in held or ():
                self._deliver_event(name, args, ack)

    def _deliver_event(self, name: str, args: list[Any], ack: AckResponder | None) -> None:
        listener = self._listener
        if listener is None:
            return
        if self._held is not None:
            self._held.append((name, args, ack))
            return
        try:
            listener.transport_event(name, args, ack)
        except Exception as exc:  # noqa: BLE001
            # A listener's bug must not take the connection down with it.
            self._report_error(exc, f"transport_event({name!r})")

    def _deliver_ack(self, callback: AckCallback, args: list[Any]) -> None:
        try:
            callback(args)
        except Exception as exc:  # noqa: BLE001 (reported to the loop's exception handler)
            self._report_error(exc, "an acknowledgement callback")

    def _report_error(self, exc: BaseException, where: str) -> None:
        loop = self._loop
        if loop is None:  # pragma: no cover (only reachable before connect)
            raise exc
        loop.call_exception_handler(
            {"message": f"jamsocket_rt: {where} raised", "exception": exc, "transport": self}
        )


def once_responder(send: Callable[[Sequence[Any]], None]) -> AckResponder:
    """An AckResponder that calls ``send`` at most once (a second answer raises RuntimeError).

    If ``send`` raises (e.g. TypeError for arguments that cannot be serialized), the responder
    is not used up and may be called again with better arguments.
    """
    used = False

    def respond(args: Sequence[Any]) -> None:
        nonlocal used
        if used:
            raise RuntimeError("this event was already acknowledged")
        send(args)
        used = True

    return respond
