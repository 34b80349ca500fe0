"""Sans-I/O server-sent events: an incremental parser and the backend status decoder on top.

:class:`EventStreamParser` follows the WHATWG ``EventSource`` parsing rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
``\\r\\n``, ``\\n`` and ``\\r`` line ends, multi-line ``data:``, ``id:``, ``event:``, ``retry:``,
comments and unknown fields ignored, one leading space after the colon stripped. Bytes may be
fed in chunks split anywhere (inside a UTF-8 sequence, between ``\\r`` and ``\\n``): the result
is the same as feeding them at once. Lines and events are bounded, so a misbehaving server cannot
make the client buffer without limit.

:class:`StatusDecoder` turns the events of a Jamsocket / Plane status stream into
:class:`~jamsocket_rt.BackendState` objects, drops repeated and replayed statuses, and knows
when the stream is done (after ``terminated``). It keeps its state across connections, so a
resumed stream continues where the previous one stopped.
"""

from __future__ import annotations

import re

from attrs import frozen

from .._errors import EventStreamTooLarge, InvalidResponse
from .._models import BackendState, status_rank

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "Event",
    "EventStreamParser",
    "EventStreamTooLarge",
    "StatusDecoder",
]

#: Longest line accepted, in bytes (line end excluded).
DEFAULT_MAX_LINE_LENGTH = 1024 * 1024
#: Largest ``data`` accepted for one event, in bytes of UTF-8 text.
DEFAULT_MAX_EVENT_SIZE = 1024 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@frozen
class Event:
    """One dispatched server-sent event.

    Attributes:
        data: the event's data; several ``data:`` lines are joined with ``"\\n"``.
        type: the ``event:`` field, ``"message"`` when there was none.
        id: the last event ID when the event was dispatched (``""`` if the server never set
            one); as in ``EventSource``, an ``id:`` persists until the next ``id:``.
    """

    data: str
    type: str = "message"
    id: str = ""


class EventStreamParser:
    """Incremental parser of a ``text/event-stream`` body.

    Args:
        last_event_id: the last event ID already known (from a previous connection).
        max_line_length: longest line accepted, in bytes.
        max_event_size: largest data accepted for one event, in bytes.

    Attributes:
        last_event_id: the ``id:`` of the last complete block (``""`` for none): send it as
            ``Last-Event-ID`` when reconnecting.
        retry: the reconnection delay the server asked for with ``retry:``, in milliseconds.
    """

    def __init__(
        self,
        *,
        last_event_id: str = "",
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self.last_event_id = last_event_id
        self.retry: int | None = None
        # The spec's "last event ID buffer": an id: only counts once its block is dispatched,
        # so a connection cut in the middle of a block does not skip the event on resume.
        self._id = last_event_id
        self.max_line_length = max_line_length
        self.max_event_size = max_event_size
        self._buffer = bytearray()
        # Where the next search for a line end starts: bytes before it hold none, so a long
        # line fed in small chunks is scanned once, not once per chunk.
        self._scan_from = 0
        # A chunk ended with \r: a \n opening the next chunk belongs to the same line end.
        self._skip_lf = False
        self._first_line = True
        self._data: list[str] = []
        self._data_size = 0
        self._type = ""

    def reset(self) -> None:
        """Forget any partial line and event, for a new connection.

        ``last_event_id`` and ``retry`` are kept, as ``EventSource`` keeps them across
        reconnections.
        """
        self._buffer.clear()
        self._id = self.last_event_id
        self._scan_from = 0
        self._skip_lf = False
        self._first_line = True
        self._data = []
        self._data_size = 0
        self._type = ""

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next bytes of the stream.

        Args:
            data: the next chunk, of any size (may be empty).

        Returns:
            The events completed by this chunk, in order.

        Raises:
            EventStreamTooLarge: a line is longer than ``max_line_length`` or an event's data
                larger than ``max_event_size``.
        """
        if self._skip_lf and data:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        start = 0
        while True:
            match = _LINE_END.search(buffer, max(start, self._scan_from))
            if match is None:
                break
            if match.end() == len(buffer) and match.group() == b"\r":
                self._skip_lf = True
            self._check_line_length(match.start() - start)
            self._line(bytes(buffer[start : match.start()]), events)
            start = match.end()
            self._scan_from = start
        del buffer[:start]
        self._scan_from = len(buffer)
        self._check_line_length(len(buffer))
        return events

    def _check_line_length(self, length: int) -> None:
        if length > self.max_line_length:
            raise EventStreamTooLarge(
                f"server-sent event stream: a line is longer than the limit of "
                f"{self.max_line_length} bytes (max_line_length)",
                self.max_line_length,
            )

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if self._first_line:
            self._first_line = False
            if raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
        if not raw:
            self._dispatch(events)
            return
        if raw[:1] == b":":
            return  # a comment: servers send them as keep-alives
        # Decoding whole lines (never chunks) keeps multi-byte sequences intact: the line
        # ends \r and \n cannot occur inside a UTF-8 sequence.
        line = raw.decode("utf-8", errors="replace")
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value.encode()) + 1
            if self._data_size > self.max_event_size + 1:
                raise EventStreamTooLarge(
                    f"server-sent event stream: an event's data is larger than the limit of "
                    f"{self.max_event_size} bytes (max_event_size)",
                    self.max_event_size,
                )
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field (and an id with a NUL, a retry that is not a number) is ignored, as
        # the specification requires.

    def _dispatch(self, events: list[Event]) -> None:
        data, self._data, self._data_size = self._data, [], 0
        event_type, self._type = self._type, ""
        self.last_event_id = self._id
        if data:
            events.append(Event("\n".join(data), event_type or "message", self.last_event_id))


class StatusDecoder:
    """Decodes a backend's status stream into new :class:`~jamsocket_rt.BackendState` objects.

    Only ``message`` events are read (other event types are ignored, as are events whose data
    is blank). Statuses already delivered, and statuses older than the latest one (a stream
    replays its history on every connection), are dropped; after ``terminated`` nothing more is
    delivered and :attr:`done` is true. One decoder follows one backend across reconnections:
    call :meth:`new_connection` before feeding the body of each new response.

    Args:
        last_state: a state already known (for example from a GET of the status URL): it is
            not delivered again, and nothing older is.
        last_event_id: the last event ID of a previous stream.
        max_line_length: see :class:`EventStreamParser`.
        max_event_size: see :class:`EventStreamParser`.
    """

    def __init__(
        self,
        *,
        last_state: BackendState | None = None,
        last_event_id: str = "",
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self._parser = EventStreamParser(
            last_event_id=last_event_id,
            max_line_length=max_line_length,
            max_event_size=max_event_size,
        )
        self._last_state: BackendState | None = None
        self._delivered: set[str] = set()
        self._max_rank = -1
        if last_state is not None:
            self.offer(last_state)

    @property
    def last_state(self) -> BackendState | None:
        """The latest state delivered (or given as ``last_state``)."""
        return self._last_state

    @property
    def last_event_id(self) -> str:
        """The last event ID seen: the ``Last-Event-ID`` to send when resuming (``""``: none)."""
        return self._parser.last_event_id

    @property
    def retry(self) -> float | None:
        """The reconnection delay the server asked for, in seconds (None if it did not)."""
        return None if self._parser.retry is None else self._parser.retry / 1000

    @property
    def done(self) -> bool:
        """True once ``terminated`` has been delivered: the stream has nothing more to say."""
        return self._last_state is not None and self._last_state.is_terminated

    def new_connection(self) -> None:
        """Start reading a new response: a partial line or event of the last one is dropped."""
        self._parser.reset()

    def offer(self, state: BackendState) -> bool:
        """Record a state obtained some other way (a GET of the status URL).

        Returns:
            True if the state is new and should be delivered; False for a repeat, a stale
            status, or anything after ``terminated``.
        """
        # The lifecycle only moves forward, so a status seen before, or a known status older
        # than the latest known one, comes from a replayed history. An unknown status (from a
        # newer server) has no place in the order: it is delivered once, and does not reset
        # the order, so a replay that follows it is still recognised.
        if self.done:
            return False
        name = str(state.status)
        rank = status_rank(state.status)
        if name in self._delivered or (rank >= 0 and rank < self._max_rank):
            return False
        self._delivered.add(name)
        self._max_rank = max(self._max_rank, rank)
        self._last_state = state
        return True

    def feed(self, data: bytes) -> list[BackendState]:
        """Parse the next bytes of the stream.

        Args:
            data: the next chunk of the response body.

        Returns:
            The new states completed by this chunk, in order (often none).

        Raises:
            InvalidResponse: an event's data is not a valid BackendState (the message names
                the problem); an unknown status is not an error, it is kept as a raw string.
            EventStreamTooLarge: a line or an event is over its limit.
        """
        states: list[BackendState] = []
        for event in self._parser.feed(data):
            if event.type != "message" or not event.data.strip():
                continue
            try:
                state = BackendState.from_json(event.data)
            except InvalidResponse as exc:
                where = f" (event id {event.id!r})" if event.id else ""
                raise InvalidResponse(
                    f"invalid status stream event{where}", exc.errors or [str(exc)]
                ) from None
            if self.offer(state):
                states.append(state)
        return states
