"""EventStream: every occurrence of one event, in order, as an async iterator."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._errors import StreamOverflow
from ..protocol.options import OVERFLOW_POLICIES, Overflow
from ..protocol.session import structure_payload

if TYPE_CHECKING:
    from .namespace import Namespace


class EventStream(AsyncIterator[Any]):
    """Every occurrence of one event, in order, from the moment ``stream()`` was called.

    Buffers about ``maxsize`` events. When the consumer falls behind, the ``overflow`` policy
    applies: "error" (default) ends the iteration with :class:`StreamOverflow` once the
    buffered events are consumed; "drop_oldest" discards the oldest and counts them in
    ``dropped``; "pause" loses nothing: the session stops reading from the connection (every
    event waits, unread, in TCP buffers) until the consumer is down to half the buffer. A
    paused connection delivers no acknowledgement either, so a consumer must not await a
    ``call()`` while its stream is full. Use as ``async for payload in session.stream("event")``
    or as an async context manager; ``aclose()`` unregisters it.
    """

    def __init__(
        self,
        session: Namespace,
        event: str,
        maxsize: int,
        overflow: Overflow | str,
        payload_type: Any = None,
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow: expected one of {OVERFLOW_POLICIES}")
        if maxsize < 1:
            raise ValueError("maxsize: expected a positive integer")
        self._session = session
        self.event = event
        self._maxsize = maxsize
        self._overflow = overflow
        self._buffer: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._end: BaseException | None = None
        self.dropped = 0
        self._type = payload_type

    def _push(self, payload: Any) -> None:
        if self._end is not None:
            return
        if self._overflow == "pause":
            self._buffer.append(payload)
            if len(self._buffer) >= self._maxsize:
                self._session._hold_reading(self)
            self._wake()
            return
        if len(self._buffer) >= self._maxsize:
            if self._overflow == "drop_oldest":
                self._buffer.popleft()
                self.dropped += 1
            else:
                self._finish(
                    StreamOverflow(
                        f"stream({self.event!r}) consumer fell {self._maxsize} events behind"
                    )
                )
                return
        self._buffer.append(payload)
        self._wake()

    def _finish(self, end: BaseException) -> None:
        if self._end is None:
            self._end = end
            self._session._streams.remove(self.event, self)
            self._session._release_reading(self)
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._end is not None:
                if isinstance(self._end, StopAsyncIteration):
                    raise StopAsyncIteration
                raise self._end
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload = self._buffer.popleft()
        if self._overflow == "pause" and len(self._buffer) <= self._maxsize // 2:
            self._session._release_reading(self)
        if self._type is not None:
            return structure_payload(payload, self._type, f"a {self.event!r} event")
        return payload

    async def aclose(self) -> None:
        self._finish(StopAsyncIteration())

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
