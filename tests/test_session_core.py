"""The Session's sans-I/O rules: queueing, payload shape, status merging, backoff."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jamsocket_rt import BackendState, BackendStatus, SendQueueFull
from jamsocket_rt.protocol.session import (
    Backoff,
    Listeners,
    Outbox,
    Outgoing,
    StatusTracker,
    checked_copy,
    payload_of,
)

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def state(status: str, **extra: object) -> BackendState:
    return BackendState.from_dict({"status": status, "time": "2026-01-01T00:00:00Z", **extra})


def test_payload_shape() -> None:
    assert payload_of([]) is None
    assert payload_of([{"a": 1}]) == {"a": 1}
    assert payload_of([1, "two"]) == (1, "two")


def test_checked_copy_copies_and_refuses_unserializable() -> None:
    original = {"list": [1, 2]}
    copied = checked_copy([original, b"bin"])
    original["list"].append(3)
    assert copied == [{"list": [1, 2]}, b"bin"]
    with pytest.raises(TypeError, match="not JSON-serializable"):
        checked_copy([object()])
    with pytest.raises(TypeError):
        checked_copy([{1, 2}])


def test_outbox_is_bounded_and_ordered() -> None:
    box: Outbox[object] = Outbox(maxsize=2)
    box.put(Outgoing("a", [1]))
    box.put(Outgoing("b", [2]))
    with pytest.raises(SendQueueFull, match="max_queue=2"):
        box.put(Outgoing("c", [3]))
    first = box.pop()
    assert first.event == "a"
    box.push_front([first])
    assert [item.event for item in box] == ["a", "b"]
    removed = box.remove_if(lambda item: item.event == "a")
    assert [item.event for item in removed] == ["a"]
    assert len(box) == 1


def test_listeners_copy_on_write() -> None:
    listeners: Listeners[str] = Listeners()
    listeners.add("e", "one")
    listeners.add("e", "two")
    snapshot = listeners.get("e")
    listeners.remove("e", "one")
    assert snapshot == ("one", "two")  # an iteration in progress is not disturbed
    assert listeners.get("e") == ("two",)
    assert not listeners.remove("e", "missing")
    listeners.remove("e", "two")
    assert listeners.names() == []


def test_status_tracker_drops_repeats_and_stale_statuses() -> None:
    tracker = StatusTracker()
    walk = ["scheduled", "loading", "loading", "starting", "scheduled", "ready", "ready"]
    news = [s for s in walk if tracker.update(state(s))]
    assert news == ["scheduled", "loading", "starting", "ready"]
    assert tracker.ready
    assert tracker.update(state("terminating", termination_reason="external"))
    assert tracker.update(state("terminated", termination_kind="soft"))
    assert tracker.terminal is not None
    assert not tracker.update(state("ready"))  # nothing after the end


def test_status_tracker_keeps_unknown_statuses_without_meaning() -> None:
    tracker = StatusTracker()
    assert tracker.update(state("waiting"))
    assert tracker.update(state("hibernating"))
    assert not tracker.update(state("hibernating"))
    assert not tracker.ready
    assert tracker.terminal is None
    assert not tracker.update(state("scheduled")), "a replay after an unknown status is stale"
    assert tracker.update(state("ready"))
    assert tracker.ready


def test_mark_ready_from_ready_url() -> None:
    tracker = StatusTracker()
    tracker.update(state("waiting"))
    assert tracker.mark_ready(BackendState(status=BackendStatus.READY, time=NOW))
    assert tracker.ready
    assert not tracker.update(state("ready"))  # the stream's own ready is not news


@given(st.floats(min_value=0.0, max_value=1.0))
def test_backoff_grows_with_jitter_and_caps(r: float) -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, random=lambda: r)
    delays = [backoff.next_delay() for _ in range(10)]
    for attempt, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_tick_schedule_is_absolute_and_skips_missed_ticks() -> None:
    from jamsocket_rt.protocol.session import LatencyEstimate, TickSchedule

    schedule = TickSchedule(interval=1.0, start=100.0)
    assert schedule.next(100.0) == (101.0, 0)
    assert schedule.next(101.3) == (102.0, 0)  # late by 0.3: no drift, next still on the grid
    assert schedule.next(105.5) == (105.0, 2)  # 103 and 104 were missed: skipped, not replayed
    assert schedule.next(105.1) == (106.0, 0)
    with pytest.raises(ValueError, match="interval"):
        TickSchedule(interval=0, start=0)
    estimate = LatencyEstimate()
    estimate.add(0.008)
    estimate.add(0.016)
    assert estimate.last == 0.016
    assert estimate.smoothed == pytest.approx(0.009)
    assert estimate.samples == 2
