"""The Session's lifecycle table (jamsocket_rt.protocol.lifecycle), without sockets.

Every row of the table is walked: each branch is taken under the guards that select it, and
every (state, input) pair without a row is checked to be ignored.
"""

from __future__ import annotations

import itertools

import pytest

from jamsocket_rt.protocol.lifecycle import (
    LIVE,
    TRANSITIONS,
    Action,
    Guard,
    Guards,
    Input,
    State,
    Transition,
    next_step,
)

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure

S, I, A = State, Input, Action  # noqa: E741 - the table reads as a table

#: What each branch of the table must be; (state, input, guards) -> (target, actions).
EXPECTED: list[tuple[State, Input, Guards, State, tuple[Action, ...]]] = [
    (S.IDLE, I.CONNECT, Guards(), S.PREPARING, (A.WAIT_READY,)),
    (S.PREPARING, I.READY, Guards(), S.CONNECTING, (A.OPEN,)),
    (S.CONNECTING, I.OPENED, Guards(), S.CONNECTED, (A.FLUSH,)),
    (S.CONNECTING, I.UNREACHABLE, Guards(), S.FAILED, (A.RAISE,)),
    (S.CONNECTING, I.REFUSED, Guards(), S.FAILED, (A.RAISE,)),
    (S.CONNECTING, I.GONE, Guards(), S.CONNECTING, (A.PROBE_STATUS,)),
    (S.CONNECTING, I.STATUS_CHECKED, Guards(terminated=True), S.TERMINATED, (A.RAISE,)),
    (S.CONNECTING, I.STATUS_CHECKED, Guards(ending=True), S.FAILED, (A.FAIL, A.RAISE)),
    (
        S.CONNECTING,
        I.STATUS_CHECKED,
        Guards(ending=True, can_renew=True),
        S.FAILED,
        (A.FAIL, A.RAISE),
    ),
    (S.CONNECTING, I.STATUS_CHECKED, Guards(can_renew=True), S.CONNECTING, (A.RENEW,)),
    (S.CONNECTING, I.STATUS_CHECKED, Guards(), S.FAILED, (A.FAIL, A.RAISE)),
    (S.CONNECTING, I.RENEWED, Guards(), S.CONNECTING, (A.OPEN,)),
    (
        S.CONNECTED,
        I.DROPPED,
        Guards(),
        S.DISCONNECTED,
        (A.SET_ASIDE_CALLS, A.ANNOUNCE_DISCONNECT, A.WAIT_GRACE),
    ),
    (
        S.DISCONNECTED,
        I.GRACE_OVER,
        Guards(reconnect=True),
        S.RECONNECTING,
        (A.FAIL_UNANSWERED, A.RESET_BACKOFF, A.OPEN),
    ),
    (S.DISCONNECTED, I.GRACE_OVER, Guards(reconnect=False), S.FAILED, (A.FAIL_UNANSWERED, A.FAIL)),
    (S.RECONNECTING, I.OPENED, Guards(), S.CONNECTED, (A.FLUSH, A.ANNOUNCE_RECONNECT)),
    (S.RECONNECTING, I.UNREACHABLE, Guards(), S.RECONNECTING, (A.WAIT_BACKOFF,)),
    (S.RECONNECTING, I.UNREACHABLE, Guards(attempts_left=False), S.FAILED, (A.GIVE_UP,)),
    (S.RECONNECTING, I.BACKOFF_OVER, Guards(), S.RECONNECTING, (A.OPEN,)),
    (S.RECONNECTING, I.REFUSED, Guards(), S.FAILED, (A.FAIL, A.REPORT)),
    (S.RECONNECTING, I.GONE, Guards(), S.RECONNECTING, (A.PROBE_STATUS,)),
    (S.RECONNECTING, I.STATUS_CHECKED, Guards(terminated=True), S.TERMINATED, ()),
    (S.RECONNECTING, I.STATUS_CHECKED, Guards(ending=True), S.FAILED, (A.FAIL, A.REPORT)),
    (S.RECONNECTING, I.STATUS_CHECKED, Guards(can_renew=True), S.RECONNECTING, (A.RENEW,)),
    (S.RECONNECTING, I.STATUS_CHECKED, Guards(), S.FAILED, (A.FAIL, A.REPORT)),
    (S.RECONNECTING, I.RENEWED, Guards(), S.RECONNECTING, (A.OPEN,)),
    (
        S.CONNECTED,
        I.KICKED,
        Guards(),
        S.KICKED,
        (A.SET_ASIDE_CALLS, A.ANNOUNCE_DISCONNECT, A.WAIT_GRACE),
    ),
    (S.KICKED, I.GRACE_OVER, Guards(), S.KICKED, (A.FAIL_UNANSWERED,)),
    (S.KICKED, I.CONNECT, Guards(), S.RECONNECTING, (A.RESET_BACKOFF, A.OPEN)),
]
EXPECTED += [
    (state, I.TERMINATED, Guards(), S.TERMINATED, (A.END,)) for state in sorted(LIVE, key=str)
]
EXPECTED += [
    (state, I.CLOSE, Guards(), S.CLOSED, (A.CLOSE,)) for state in State if state is not S.CLOSED
]


@pytest.mark.parametrize(
    ("state", "event", "guards", "target", "actions"),
    EXPECTED,
    ids=[f"{row[0].name}-{row[1].name}-{index}" for index, row in enumerate(EXPECTED)],
)
def test_every_branch(
    state: State, event: Input, guards: Guards, target: State, actions: tuple[Action, ...]
) -> None:
    assert next_step(state, event, guards) == Transition(target, actions)


def test_the_expectations_cover_every_branch_of_the_table() -> None:
    covered = {(state, event) for state, event, *_ in EXPECTED}
    assert covered == set(TRANSITIONS)
    for (state, event), branches in TRANSITIONS.items():
        taken = {
            next_step(state, event, guards)
            for s, e, guards, *_ in EXPECTED
            if (s, e) == (state, event)
        }
        assert taken == {transition for _, transition in branches}, (state, event)


def test_inputs_without_a_row_are_ignored() -> None:
    for state, event in itertools.product(State, Input):
        if (state, event) not in TRANSITIONS:
            assert next_step(state, event) is None
    # In particular: nothing revives a closed or terminated session.
    assert all(next_step(S.CLOSED, event) is None for event in Input)
    assert next_step(S.TERMINATED, I.OPENED) is None
    assert next_step(S.TERMINATED, I.DROPPED) is None


def test_every_state_is_reachable_from_idle() -> None:
    reached = {S.IDLE}
    frontier = [S.IDLE]
    while frontier:
        state = frontier.pop()
        for (source, _), branches in TRANSITIONS.items():
            if source is state:
                for _, transition in branches:
                    if transition.target not in reached:
                        reached.add(transition.target)
                        frontier.append(transition.target)
    assert reached == set(State)


def test_guards_hold_by_name() -> None:
    facts = Guards(reconnect=False, terminated=True, ending=False, can_renew=True)
    assert facts.holds(None)
    assert not facts.holds(Guard.RECONNECT)
    assert facts.holds(Guard.TERMINATED)
    assert not facts.holds(Guard.ENDING)
    assert facts.holds(Guard.CAN_RENEW)


def test_a_drop_then_a_reconnect_walks_back_to_connected() -> None:
    state = S.CONNECTED
    for event in (I.DROPPED, I.GRACE_OVER, I.UNREACHABLE, I.BACKOFF_OVER, I.OPENED):
        transition = next_step(state, event)
        assert transition is not None
        state = transition.target
    assert state is S.CONNECTED


def test_guards_may_be_gathered_only_when_a_branch_needs_them() -> None:
    asked: list[int] = []

    def gather() -> Guards:
        asked.append(1)
        return Guards(reconnect=False)

    # An unconditional row: the facts are not gathered at all.
    assert next_step(S.IDLE, I.CONNECT, gather) == Transition(S.PREPARING, (A.WAIT_READY,))
    assert asked == []
    # A guarded row: gathered once, and they decide.
    after_grace = next_step(S.DISCONNECTED, I.GRACE_OVER, gather)
    assert after_grace is not None
    assert after_grace.target is S.FAILED
    assert asked == [1]


def test_a_server_disconnect_waits_for_connect_and_never_reconnects_by_itself() -> None:
    # socket.io-client's "io server disconnect": only the program's connect() reopens it.
    state = S.CONNECTED
    for event in (I.KICKED, I.GRACE_OVER):
        transition = next_step(state, event, Guards(reconnect=True))
        assert transition is not None
        assert A.OPEN not in transition.actions
        state = transition.target
    assert state is S.KICKED
    for event in (I.BACKOFF_OVER, I.OPENED, I.DROPPED, I.UNREACHABLE):
        assert next_step(state, event) is None
    again = next_step(state, I.CONNECT)
    assert again == Transition(S.RECONNECTING, (A.RESET_BACKOFF, A.OPEN))
    # A kicked session's backend may still end, and a kicked session may be closed.
    assert next_step(S.KICKED, I.TERMINATED) == Transition(S.TERMINATED, (A.END,))
    assert next_step(S.KICKED, I.CLOSE) == Transition(S.CLOSED, (A.CLOSE,))


def test_reconnect_attempts_run_out_into_failed() -> None:
    state = S.RECONNECTING
    left = [True, True, False]  # the guard, as the Session computes it after each failure
    for attempts_left in left:
        transition = next_step(state, I.UNREACHABLE, Guards(attempts_left=attempts_left))
        assert transition is not None
        state = transition.target
        if state is S.RECONNECTING:
            assert transition.actions == (A.WAIT_BACKOFF,)
    assert state is S.FAILED
    assert next_step(S.FAILED, I.CONNECT) is None


def test_members_hash_by_identity() -> None:
    # The table is looked up on every step of every session: its keys hash in C.
    for member in [*State, *Input, *Action]:
        assert hash(member) == object.__hash__(member)
        assert {member: 1}[member] == 1
