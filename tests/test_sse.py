"""The sans-I/O server-sent events parser and the status decoder (no network)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsocket_rt import BackendState, BackendStatus, InvalidResponse, TerminationReason
from jamsocket_rt.protocol.sse import (
    Event,
    EventStreamParser,
    EventStreamTooLarge,
    StatusDecoder,
)

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure


def feed_all(parser: EventStreamParser, chunks: list[bytes]) -> list[Event]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def reference_events(stream: bytes) -> tuple[list[Event], str]:
    """A direct, non-incremental reading of the WHATWG algorithm, to check the parser against."""
    text = stream.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end: not a line
    events: list[Event] = []
    data: list[str] = []
    event_type = ""
    id_buffer = last_id = ""
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data:
                events.append(Event("\n".join(data), event_type or "message", last_id))
            data, event_type = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
    return events, last_id


# -- the parser ---------------------------------------------------------------------------


def test_basic_event_and_defaults() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: hello\n\n") == [Event("hello")]
    assert parser.last_event_id == ""
    assert parser.retry is None


def test_multiline_data_is_joined_with_newlines() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: one\ndata:two\ndata\ndata:  three\n\n") == [
        Event("one\ntwo\n\n three")
    ]


def test_only_one_leading_space_is_stripped() -> None:
    assert EventStreamParser().feed(b"data:   x \n\n") == [Event("  x ")]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end(end: bytes) -> None:
    stream = end.join([b"id: 7", b"event: status", b"data: a", b"data: b", b"", b""])
    assert EventStreamParser().feed(stream) == [Event("a\nb", "status", "7")]


def test_mixed_line_ends_and_cr_lf_split_across_chunks() -> None:
    parser = EventStreamParser()
    events = feed_all(parser, [b"data: a\r", b"\ndata: b\r", b"\r", b"\n", b"data: c\n\r\n"])
    # "\r" then "\r\n" are two line ends: the first blank line dispatches "a\nb"; the "\n"
    # after "\r" + "\r" chunk boundary is its own blank line (nothing to dispatch).
    assert events == [Event("a\nb"), Event("c")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    parser = EventStreamParser()
    stream = b": keep-alive\n\n:\n\nfoo: bar\ndata: x\nnonsense\n\n"
    assert parser.feed(stream) == [Event("x")]


def test_id_persists_and_updates_on_dispatch() -> None:
    parser = EventStreamParser()
    events = parser.feed(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", ""]
    assert parser.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 5\n\nid: a\x00b\ndata: x\n\n") == [Event("x", id="5")]


def test_id_of_an_unfinished_block_is_not_committed() -> None:
    parser = EventStreamParser(last_event_id="ready")
    parser.feed(b"id: terminated\ndata: {")
    assert parser.last_event_id == "ready"
    parser.reset()  # the connection dropped mid-event: resume from "ready"
    assert parser.last_event_id == "ready"
    assert parser.feed(b"data: x\n\n") == [Event("x", id="ready")]


def test_id_only_block_sets_last_event_id_without_an_event() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 3\n\n") == []
    assert parser.last_event_id == "3"


def test_retry() -> None:
    parser = EventStreamParser()
    parser.feed(b"retry: 2500\n\nretry: soon\n\nretry: -1\n\n")
    assert parser.retry == 2500


def test_event_type_resets_after_dispatch() -> None:
    events = EventStreamParser().feed(b"event: ping\ndata: 1\n\ndata: 2\n\nevent: x\n\n")
    assert events == [Event("1", "ping"), Event("2")]


def test_leading_bom_is_dropped_once() -> None:
    parser = EventStreamParser()
    events = feed_all(parser, [b"\xef\xbb", b"\xbfdata: a\n\n", b"\xef\xbb\xbfdata: b\n\n"])
    # Only the stream's first BOM is dropped; a later one makes an unknown field name.
    assert events == [Event("a")]


def test_utf8_split_inside_a_sequence() -> None:
    text = "héllo € 😀 ✓"
    stream = f"data: {text}\n\n".encode()
    parser = EventStreamParser()
    assert feed_all(parser, [bytes([b]) for b in stream]) == [Event(text)]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert EventStreamParser().feed(b"data: \xff\xfe\n\n") == [Event("\ufffd\ufffd")]


def test_incomplete_event_at_end_is_not_dispatched() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"data: a\n") == []
    parser.reset()
    assert parser.feed(b"data: b\n\n") == [Event("b")]


def test_line_length_limit_on_a_partial_line() -> None:
    parser = EventStreamParser(max_line_length=100)
    parser.feed(b"data: " + b"x" * 94)  # exactly 100 bytes: fine
    with pytest.raises(EventStreamTooLarge, match=r"100 bytes \(max_line_length\)") as info:
        parser.feed(b"x")
    assert info.value.limit == 100
    assert isinstance(info.value, InvalidResponse)


def test_line_length_limit_on_a_complete_line() -> None:
    parser = EventStreamParser(max_line_length=10)
    with pytest.raises(EventStreamTooLarge):
        parser.feed(b"data: 0123456789\n\n")


def test_default_line_limit_is_one_mib() -> None:
    parser = EventStreamParser()
    for _ in range(16):
        parser.feed(b"x" * 65536)  # exactly 1 MiB: still fine
    with pytest.raises(EventStreamTooLarge, match="1048576"):
        parser.feed(b"x")


def test_event_size_limit() -> None:
    parser = EventStreamParser(max_event_size=10)
    assert parser.feed(b"data: 01234\ndata: 5678\n\n") == [Event("01234\n5678")]
    with pytest.raises(EventStreamTooLarge, match="max_event_size"):
        parser.feed(b"data: 01234\ndata: 56789\n\n")


def test_long_line_fed_in_small_chunks_is_linear() -> None:
    parser = EventStreamParser()
    line = b"data: " + b"y" * 200_000
    for i in range(0, len(line), 7):
        assert parser.feed(line[i : i + 7]) == []
    assert parser.feed(b"\n\n") == [Event("y" * 200_000)]


_line = st.one_of(
    st.sampled_from(["", ":", ": ka", "data", "data:", "event: e", "id", "retry: 10", "x: y"]),
    st.builds(lambda v: "data:" + v, st.text(max_size=8)),
    st.builds(lambda v: "data: " + v, st.text(max_size=8)),
    st.builds(lambda v: "id: " + v, st.text(alphabet="ab\0", max_size=3)),
    st.builds(lambda v: "event:" + v, st.text(alphabet="ms", max_size=2)),
).map(lambda s: s.replace("\r", "").replace("\n", ""))

_stream = st.lists(st.tuples(_line, st.sampled_from(["\n", "\r\n", "\r"])), max_size=25).map(
    lambda pairs: "".join(line + end for line, end in pairs).encode()
)


@settings(max_examples=300, deadline=None)
@given(stream=_stream, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_chunking_never_changes_the_events(stream: bytes, cuts: list[int]) -> None:
    whole = EventStreamParser()
    expected = whole.feed(stream)
    pieces = EventStreamParser()
    assert feed_all(pieces, split_at(stream, cuts)) == expected
    assert pieces.last_event_id == whole.last_event_id
    assert (expected, whole.last_event_id) == reference_events(stream)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=10))
def test_arbitrary_bytes_never_crash_and_chunking_agrees(data: bytes, cuts: list[int]) -> None:
    expected = EventStreamParser().feed(data)
    assert feed_all(EventStreamParser(), split_at(data, cuts)) == expected
    assert expected == reference_events(data)[0]


# -- the status decoder -------------------------------------------------------------------


def status_event(status: str, event_id: str | None = None, **extra: object) -> bytes:
    body = json.dumps({"status": status, "time": "2024-05-01T12:00:00.123456789Z", **extra})
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data:{body}\n\n".encode()


def statuses(states: list[BackendState]) -> list[str]:
    return [str(s.status) for s in states]


def test_decoder_delivers_new_statuses_and_finishes_after_terminated() -> None:
    decoder = StatusDecoder()
    stream = b"".join(
        status_event(s) for s in ("scheduled", "loading", "loading", "starting", "waiting", "ready")
    )
    assert statuses(decoder.feed(stream)) == [
        "scheduled",
        "loading",
        "starting",
        "waiting",
        "ready",
    ]
    assert not decoder.done
    end = decoder.feed(
        status_event("terminating", termination_reason="external", termination_kind="soft")
        + status_event("terminated", termination_reason="external", exit_error=False)
        + status_event("ready")
    )
    assert statuses(end) == ["terminating", "terminated"]
    assert end[1].termination_reason is TerminationReason.EXTERNAL
    assert decoder.done
    assert decoder.last_state == end[1]
    assert decoder.feed(status_event("terminated")) == []


def test_decoder_drops_a_replayed_history_after_a_reconnect() -> None:
    decoder = StatusDecoder()
    decoder.feed(status_event("scheduled") + status_event("loading") + status_event("ready"))
    decoder.new_connection()
    replay = b"".join(status_event(s) for s in ("scheduled", "loading", "ready", "terminated"))
    assert statuses(decoder.feed(replay)) == ["terminated"]


def test_decoder_resumes_after_a_cut_in_the_middle_of_an_event() -> None:
    decoder = StatusDecoder()
    first = status_event("scheduled", "scheduled") + status_event("ready", "ready")
    cut = status_event("terminated", "terminated")
    assert statuses(decoder.feed(first + cut[:20])) == ["scheduled", "ready"]
    assert decoder.last_event_id == "ready"
    decoder.new_connection()
    assert statuses(decoder.feed(cut)) == ["terminated"]
    assert decoder.last_event_id == "terminated"


def test_decoder_reads_plane_json_with_epoch_milliseconds() -> None:
    decoder = StatusDecoder()
    data = b'id: ready\ndata: {"status":"ready","time":1714564800000}\n\n'
    [state] = decoder.feed(data)
    assert state.status is BackendStatus.READY
    assert state.time.year == 2024
    assert decoder.last_event_id == "ready"


def test_decoder_keeps_an_unknown_status_raw() -> None:
    decoder = StatusDecoder()
    got = decoder.feed(status_event("ready") + status_event("hibernating") + status_event("ready"))
    assert statuses(got) == ["ready", "hibernating"]
    assert got[1].status == "hibernating"
    assert not got[1].is_known
    assert decoder.feed(status_event("hibernating")) == []


def test_decoder_recognises_a_replay_after_an_unknown_status() -> None:
    decoder = StatusDecoder()
    first = b"".join(status_event(s) for s in ("scheduled", "ready", "hibernating"))
    assert statuses(decoder.feed(first)) == ["scheduled", "ready", "hibernating"]
    decoder.new_connection()
    replay = b"".join(status_event(s) for s in ("scheduled", "ready", "hibernating", "terminated"))
    assert statuses(decoder.feed(replay)) == ["terminated"]


def test_decoder_delivers_an_escalation_from_soft_to_hard_termination() -> None:
    decoder = StatusDecoder()
    stream = b"".join(
        status_event(s) for s in ("ready", "terminating", "hard-terminating", "terminating")
    )
    assert statuses(decoder.feed(stream)) == ["ready", "terminating", "hard-terminating"]


def test_decoder_invalid_json_names_the_problem() -> None:
    decoder = StatusDecoder()
    with pytest.raises(InvalidResponse, match=r"status stream event \(event id '7'\).*JSON"):
        decoder.feed(b"id: 7\ndata: {not json\n\n")


def test_decoder_wrong_shape_names_the_field() -> None:
    with pytest.raises(InvalidResponse, match="status: required field is missing") as info:
        StatusDecoder().feed(b'data: {"time": 1}\n\n')
    assert info.value.errors


def test_decoder_ignores_other_event_types_and_blank_data() -> None:
    decoder = StatusDecoder()
    stream = b"event: ping\ndata: {}\n\ndata:\n\ndata: \n\n" + status_event("ready")
    assert statuses(decoder.feed(stream)) == ["ready"]


def test_decoder_seeded_with_a_known_state() -> None:
    known = BackendState.from_dict({"status": "ready", "time": 0})
    decoder = StatusDecoder(last_state=known, last_event_id="ready")
    assert decoder.last_event_id == "ready"
    assert statuses(decoder.feed(status_event("loading") + status_event("ready"))) == []
    assert decoder.offer(BackendState.from_dict({"status": "terminated", "time": 1}))
    assert decoder.done


def test_decoder_retry_is_in_seconds() -> None:
    decoder = StatusDecoder()
    decoder.feed(b"retry: 1500\n\n")
    assert decoder.retry == 1.5


def test_decoder_line_limit() -> None:
    with pytest.raises(EventStreamTooLarge):
        StatusDecoder(max_line_length=50).feed(status_event("ready"))


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=15))
def test_decoder_chunking_never_changes_the_states(cuts: list[int]) -> None:
    stream = b": hello\r\n\r\n".join(
        status_event(s, s)
        for s in ("scheduled", "loading", "starting", "waiting", "ready", "ready", "terminated")
    )
    decoder = StatusDecoder()
    got = [state for chunk in split_at(stream, cuts) for state in decoder.feed(chunk)]
    assert statuses(got) == ["scheduled", "loading", "starting", "waiting", "ready", "terminated"]
    assert decoder.done
