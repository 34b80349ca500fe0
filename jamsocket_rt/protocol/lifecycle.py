"""The Session's lifecycle as data: states, inputs, and the transition table between them.

Everything that decides what a Session does next lives here (h11's rule: every rule of the
state machine in one place, the I/O code only performs what it is told). The asyncio front end
feeds an :class:`Input` for each thing that happened (the backend became ready, a connection
opened or dropped, the proxy answered 410, the status said ``terminated``, the program called
``close()``) and performs the :class:`Action` list of the :class:`Transition` it gets back.

Decisions that depend on more than the state are *guards*: named booleans of a
:class:`Guards` value (is reconnecting allowed, can the token be renewed, is the backend
terminating or gone). A table row lists its branches in order; the first whose guard holds
(``None`` always holds) is taken. An input that has no row for the current state is ignored:
:func:`next_step` returns None, and the caller discards whatever came with it (for example a
connection that opened after ``close()``).

::

    IDLE --CONNECT--> PREPARING --READY--> CONNECTING --OPENED--> CONNECTED
    CONNECTED --DROPPED--> DISCONNECTED --GRACE_OVER--> RECONNECTING --OPENED--> CONNECTED
    RECONNECTING --UNREACHABLE--> RECONNECTING (backoff) --BACKOFF_OVER--> RECONNECTING
    RECONNECTING --UNREACHABLE, no attempts left--> FAILED
    CONNECTED --KICKED--> KICKED (no reconnect) --CONNECT--> RECONNECTING
    CONNECTING | RECONNECTING --GONE (410)--> probe the status --STATUS_CHECKED--> renew or end
    any live state --TERMINATED--> TERMINATED;  any state --CLOSE--> CLOSED
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

from attrs import frozen

__all__ = [
    "LIVE",
    "TRANSITIONS",
    "Action",
    "Branch",
    "Guard",
    "Guards",
    "Input",
    "State",
    "Transition",
    "next_step",
]


#: Members are singletons, so identity is their equality and can be their hash, computed in C:
#: enum.Enum's own __hash__ is Python code, and every step of every session looks up the table.
_identity_hash = object.__hash__


class State(enum.Enum):
    """Where a Session is in its life."""

    __hash__ = _identity_hash

    IDLE = "idle"  # created; connect() not called yet
    PREPARING = "preparing"  # getting a ConnectResponse, waiting for the backend to be ready
    CONNECTING = "connecting"  # opening the first connection
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # dropped: waiting out the grace period for a terminated status
    RECONNECTING = "reconnecting"  # opening a new connection, with backoff between attempts
    KICKED = "kicked"  # the server disconnected the session: no reconnect until connect()
    FAILED = "failed"  # gave up (refused, token expired, backend ending, no reconnect)
    TERMINATED = "terminated"  # the backend has ended
    CLOSED = "closed"  # closed by the program


class Input(enum.Enum):
    """What happened."""

    __hash__ = _identity_hash

    CONNECT = "connect"  # the program called connect()
    READY = "ready"  # the backend is ready and a ConnectResponse is in hand
    OPENED = "opened"  # a connection opened (Engine.IO and the Socket.IO CONNECT)
    UNREACHABLE = "unreachable"  # opening failed: a network error or a timeout
    REFUSED = "refused"  # the server refused the Socket.IO CONNECT
    GONE = "gone"  # the proxy answered 410: the token is unknown, expired or ended
    STATUS_CHECKED = "status_checked"  # the status was read after a 410 (see the guards)
    RENEWED = "renewed"  # a fresh ConnectResponse for the same key (and ready)
    DROPPED = "dropped"  # the connection was lost
    KICKED = "kicked"  # the server disconnected the Session's namespace ("io server disconnect")
    GRACE_OVER = "grace_over"  # the wait for a terminated status after a drop is over
    BACKOFF_OVER = "backoff_over"  # the wait between two reconnect attempts is over
    TERMINATED = "terminated"  # the status says the backend has ended
    CLOSE = "close"  # the program called close()


class Action(enum.Enum):
    """What the front end does, in the order a transition lists them."""

    __hash__ = _identity_hash

    WAIT_READY = "wait_ready"  # get a ConnectResponse if needed, wait until ready -> READY
    OPEN = "open"  # try the transports -> OPENED | UNREACHABLE | REFUSED | GONE
    FLUSH = "flush"  # write what was queued while disconnected, in order
    ANNOUNCE_RECONNECT = "announce_reconnect"  # on_reconnect hooks
    SET_ASIDE_CALLS = "set_aside_calls"  # re-queue retried calls, hold the others unanswered
    ANNOUNCE_DISCONNECT = "announce_disconnect"  # on_disconnect hooks
    WAIT_GRACE = "wait_grace"  # -> GRACE_OVER
    FAIL_UNANSWERED = "fail_unanswered"  # calls cut by the drop fail with ConnectionLost
    RESET_BACKOFF = "reset_backoff"
    WAIT_BACKOFF = "wait_backoff"  # -> BACKOFF_OVER
    PROBE_STATUS = "probe_status"  # read the status (and wait out a terminating backend)
    RENEW = "renew"  # ask the connect callable for a fresh token -> RENEWED
    FAIL = "fail"  # every waiting call, wait_for and stream fails; later uses raise
    GIVE_UP = "give_up"  # FAIL with ReconnectFailed (attempts, last error), and on_error
    REPORT = "report"  # on_error hears what ended the session in the background (no caller)
    RAISE = "raise"  # connect() raises what happened (the first connection only)
    END = "end"  # the backend ended: on_terminated hooks, fail everything, drop the connection
    CLOSE = "close"  # release everything: tasks, connection, status watcher


class Guard(enum.Enum):
    """A condition a table row may depend on; its value comes from :class:`Guards`."""

    RECONNECT = "reconnect"
    TERMINATED = "terminated"
    ENDING = "ending"
    CAN_RENEW = "can_renew"
    ATTEMPTS_LEFT = "attempts_left"


@frozen
class Guards:
    """The facts a decision may depend on besides the state.

    Attributes:
        reconnect: the session reconnects after a drop (its ``reconnect`` option).
        terminated: the status says the backend has ended.
        ending: the status says the backend is terminating.
        can_renew: a ``connect`` callable can fetch a fresh token.
        attempts_left: fewer reconnect attempts failed in a row than ``reconnect_attempts``
            allows (always, without a limit).
    """

    reconnect: bool = True
    terminated: bool = False
    ending: bool = False
    can_renew: bool = False
    attempts_left: bool = True

    def holds(self, guard: Guard | None) -> bool:
        """Whether ``guard`` holds (None always does)."""
        return guard is None or bool(getattr(self, guard.value))


@frozen
class Transition:
    """The state to move to and what to do, in order."""

    target: State
    actions: tuple[Action, ...] = ()


#: A table row's branch: taken when its guard holds (None: always).
Branch = tuple[Guard | None, Transition]

S, I, A, G = State, Input, Action, Guard  # noqa: E741 - the table reads as a table


def _to(target: State, *actions: Action) -> tuple[Branch, ...]:
    return ((None, Transition(target, actions)),)


#: The states in which the backend may still end (and the session is not closed).
LIVE = frozenset(
    {S.PREPARING, S.CONNECTING, S.CONNECTED, S.DISCONNECTED, S.RECONNECTING, S.KICKED, S.FAILED}
)


def _after_status_check(state: State, first: bool) -> tuple[Branch, ...]:
    """After a 410 and a read of the status: the backend ended, is ending, or renew the token.

    On the first connection the outcome is raised to ``connect()``'s caller; on a reconnect
    everything waiting fails with it.
    """
    give_up = (A.FAIL, A.RAISE) if first else (A.FAIL, A.REPORT)
    return (
        (G.TERMINATED, Transition(S.TERMINATED, (A.RAISE,) if first else ())),
        (G.ENDING, Transition(S.FAILED, give_up)),
        (G.CAN_RENEW, Transition(state, (A.RENEW,))),
        (None, Transition(S.FAILED, give_up)),
    )


_ROWS: dict[tuple[State, Input], tuple[Branch, ...]] = {
    (S.IDLE, I.CONNECT): _to(S.PREPARING, A.WAIT_READY),
    (S.PREPARING, I.READY): _to(S.CONNECTING, A.OPEN),
    # The first connection: what goes wrong is raised to connect()'s caller.
    (S.CONNECTING, I.OPENED): _to(S.CONNECTED, A.FLUSH),
    (S.CONNECTING, I.UNREACHABLE): _to(S.FAILED, A.RAISE),
    (S.CONNECTING, I.REFUSED): _to(S.FAILED, A.RAISE),
    (S.CONNECTING, I.GONE): _to(S.CONNECTING, A.PROBE_STATUS),
    (S.CONNECTING, I.STATUS_CHECKED): _after_status_check(S.CONNECTING, first=True),
    (S.CONNECTING, I.RENEWED): _to(S.CONNECTING, A.OPEN),
    # A drop: the disconnect arrives a little before a backend's terminated status, so wait for
    # it a moment before reconnecting (calls cut by an ending then fail as BackendTerminated).
    (S.CONNECTED, I.DROPPED): _to(
        S.DISCONNECTED, A.SET_ASIDE_CALLS, A.ANNOUNCE_DISCONNECT, A.WAIT_GRACE
    ),
    (S.DISCONNECTED, I.GRACE_OVER): (
        (G.RECONNECT, Transition(S.RECONNECTING, (A.FAIL_UNANSWERED, A.RESET_BACKOFF, A.OPEN))),
        (None, Transition(S.FAILED, (A.FAIL_UNANSWERED, A.FAIL))),
    ),
    # The server disconnected the Session (socket.io-client's "io server disconnect"): no
    # reconnect, but queued sends stay queued and connect() may open it again. The grace
    # still applies: a backend that ends may say goodbye that way before its status does.
    (S.CONNECTED, I.KICKED): _to(S.KICKED, A.SET_ASIDE_CALLS, A.ANNOUNCE_DISCONNECT, A.WAIT_GRACE),
    (S.KICKED, I.GRACE_OVER): _to(S.KICKED, A.FAIL_UNANSWERED),
    (S.KICKED, I.CONNECT): _to(S.RECONNECTING, A.RESET_BACKOFF, A.OPEN),
    # Reconnecting: network errors are retried with backoff (up to reconnect_attempts failed
    # attempts in a row); a refusal is final.
    (S.RECONNECTING, I.OPENED): _to(S.CONNECTED, A.FLUSH, A.ANNOUNCE_RECONNECT),
    (S.RECONNECTING, I.UNREACHABLE): (
        (G.ATTEMPTS_LEFT, Transition(S.RECONNECTING, (A.WAIT_BACKOFF,))),
        (None, Transition(S.FAILED, (A.GIVE_UP,))),
    ),
    (S.RECONNECTING, I.BACKOFF_OVER): _to(S.RECONNECTING, A.OPEN),
    (S.RECONNECTING, I.REFUSED): _to(S.FAILED, A.FAIL, A.REPORT),
    (S.RECONNECTING, I.GONE): _to(S.RECONNECTING, A.PROBE_STATUS),
    (S.RECONNECTING, I.STATUS_CHECKED): _after_status_check(S.RECONNECTING, first=False),
    (S.RECONNECTING, I.RENEWED): _to(S.RECONNECTING, A.OPEN),
}
for _state in LIVE:
    _ROWS[(_state, I.TERMINATED)] = _to(S.TERMINATED, A.END)
for _state in State:
    if _state is not S.CLOSED:
        _ROWS[(_state, I.CLOSE)] = _to(S.CLOSED, A.CLOSE)

#: Every rule: (state, input) -> the branches, first matching guard wins.
TRANSITIONS: Mapping[tuple[State, Input], tuple[Branch, ...]] = _ROWS


def next_step(
    state: State, event: Input, guards: Guards | Callable[[], Guards] | None = None
) -> Transition | None:
    """The transition for ``event`` in ``state``, or None when the event is ignored there.

    Args:
        state: the current state.
        event: what happened.
        guards: the facts the decision may depend on (defaults: reconnect on, nothing known),
            or a function that gathers them, called only when a branch depends on them.

    Returns:
        The first branch whose guard holds, or None when ``state`` has no row for ``event``.
    """
    branches = TRANSITIONS.get((state, event))
    if branches is None:
        return None
    first_guard, first = branches[0]
    if first_guard is None:
        return first
    facts = guards() if callable(guards) else guards or Guards()
    for guard, transition in branches:
        if facts.holds(guard):
            return transition
    raise AssertionError(f"no branch of ({state}, {event}) holds")  # pragma: no cover
