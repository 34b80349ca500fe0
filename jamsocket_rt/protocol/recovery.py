"""Connection state recovery (Socket.IO 4.6+), the client's side, sans I/O.

A Node socket.io server started with ``connectionStateRecovery`` gives every socket a private
session id (``pid``, in the CONNECT answer, next to ``sid``) and appends an *offset* as the last
argument of every EVENT it emits to it, except acknowledged and volatile ones (those are not
stored). A client that comes back within ``maxDisconnectionDuration`` sends ``{pid, offset}``
merged into its CONNECT payload; the server then restores the socket (same ``sid``, same
rooms), writes every stored event the client missed after that offset, and answers with the
same ``pid``. Any other answer is a fresh socket: the events of the gap are gone.

:class:`Recovery` is what survives a reconnect, one per namespace (each socket.io-client Socket
has its own ``_pid`` and ``_lastOffset``). The Namespace owns it; each connection's
:class:`~jamsocket_rt.protocol.socketio.ClientProtocol` is handed it, builds the CONNECT payload
from it and records the offsets into it. Unlike socket.io-client, which hands the offset to the
listeners as an extra argument, the offset is taken off the arguments: handlers, ``wait_for``,
``stream`` and ``type=`` see the event exactly as the server emitted it, recovery on or off.
socket.io-client records the last string argument of any event without an ack id once it has a
pid, and so does this module: it cannot tell an offset from the last string argument of a
volatile emit (which has none), so with recovery on such an argument is taken as the offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .events import Connected

__all__ = ["Recovery", "answered"]


class Recovery:
    """What connection state recovery keeps of one namespace across reconnects.

    Attributes:
        pid: the private session id of the last CONNECT answer (None: the server has recovery
            off, or nothing was connected yet). Never shown: it lets its holder take the
            socket over.
        offset: the offset of the last event received since that answer, or None.
        recovered: whether the last CONNECT answer restored the previous socket (same sid, the
            events missed in between replayed).
    """

    __slots__ = ("offset", "pid", "recovered")

    def __init__(self) -> None:
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered = False

    def __repr__(self) -> str:
        return f"<Recovery pid={'set' if self.pid else None} recovered={self.recovered}>"

    def connect_payload(self, auth: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The CONNECT payload: ``auth`` with ``pid`` and ``offset`` merged in.

        As socket.io-client's ``Object.assign({pid, offset}, auth)``: the keys of ``auth`` win,
        and without an offset yet (no event received) only the pid is sent, which the server
        answers with a fresh socket.
        """
        if self.pid is None:
            return auth
        payload: dict[str, Any] = {"pid": self.pid}
        if self.offset is not None:
            payload["offset"] = self.offset
        if auth:
            payload.update(auth)
        return payload

    def connected(self, answer: Any, early: Sequence[Any] = ()) -> str | None:
        """Records the CONNECT answer's ``pid``; returns it (None: recovery is off there).

        Sets :attr:`recovered` (the answer carries the pid that was kept). A fresh socket
        forgets the old offset: it belongs to a session the server no longer has. ``early``:
        the events (:class:`~jamsocket_rt.protocol.events.Event`) that came before the answer
        (a recovering server replays the missed ones first); with a pid their offsets are
        taken, as socket.io-client records them once connected.
        """
        pid = answer.get("pid") if isinstance(answer, dict) else None
        if not isinstance(pid, str) or not pid:
            pid = None
        self.recovered = pid is not None and pid == self.pid
        if not self.recovered:
            self.offset = None
        self.pid = pid
        if pid is not None:
            for event in early:
                if event.ack_id is None:
                    self.take_offset(event.args)
        return pid

    def take_offset(self, args: list[Any]) -> None:
        """Takes the offset off the end of an event's ``args`` (ones without an ack id), if the
        last argument is a string, and records it."""
        if args and type(args[-1]) is str:
            self.offset = args.pop()

    def forget(self) -> None:
        """The next CONNECT asks for a fresh socket (a connection that cannot recover was
        made, e.g. over python-socketio's long-polling client)."""
        self.pid = None
        self.offset = None
        self.recovered = False


def answered(
    recovery: Recovery | None, answer: dict[str, Any], sid: str, nsp: str, early: list[Any]
) -> tuple[Connected, Recovery | None]:
    """The :class:`Connected` event of a CONNECT answer, and the recovery that records the
    namespace's offsets from now on (None: the server sent no pid, so it appends none)."""
    if recovery is None:
        return Connected(sid, nsp), None
    pid = recovery.connected(answer, early)
    return Connected(sid, nsp, pid, recovery.recovered), None if pid is None else recovery
