"""Relaying a backend's output, line by line, without letting it stall the dev server."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

#: Longer lines are cut (and their rest dropped up to the next newline).
MAX_LINE_CHARS = 4096
#: More lines than this in one second are counted instead of shown.
MAX_LINES_PER_SECOND = 1000
_READ_SIZE = 64 * 1024
_TRUNCATED = " [line truncated]"


class LinePump:
    """Splits a byte stream into lines and writes them, prefixed, to a text stream.

    Feeding is synchronous and bounded: a line is cut at ``max_line_chars``, and beyond
    ``max_lines_per_second`` lines are only counted, so that a backend that writes without end
    costs the event loop little and never fills memory. The count of dropped lines is shown
    when the rate falls back (and at the end).
    """

    def __init__(
        self,
        prefix: str,
        output: TextIO | None,
        *,
        max_line_chars: int = MAX_LINE_CHARS,
        max_lines_per_second: int = MAX_LINES_PER_SECOND,
    ) -> None:
        self._prefix = prefix
        self._output = output
        self._max_bytes = max_line_chars  # bytes, close enough to characters for a cap
        self._max_rate = max_lines_per_second
        self._pending = b""
        self._skipping_rest = False  # inside a line that was already cut and shown
        self._window = 0
        self._shown_in_window = 0
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        """Takes the next chunk of output and writes every line it completes."""
        *lines, tail = data.split(b"\n")
        if lines:
            if self._skipping_rest:
                del lines[0]  # the rest of a line that was already cut and shown
                self._skipping_rest = False
            else:
                lines[0] = self._pending + lines[0]
            self._pending = b""
            self._write(lines)
        if self._skipping_rest:
            return
        self._pending += tail
        if len(self._pending) > self._max_bytes:
            self._write([self._pending])  # _write cuts it
            self._pending = b""
            self._skipping_rest = True

    def close(self) -> None:
        """Writes the last, unterminated line and the count of dropped lines, if any."""
        if self._pending:
            self._write([self._pending])
            self._pending = b""
        self._report_dropped()

    def _write(self, lines: list[bytes]) -> None:
        window = int(time.monotonic())
        if window != self._window:
            self._report_dropped()
            self._window = window
            self._shown_in_window = 0
        room = max(0, self._max_rate - self._shown_in_window)
        shown = lines[:room]
        self._dropped += len(lines) - len(shown)
        self._shown_in_window += len(shown)
        if shown:
            self._emit("".join(self._format(line) for line in shown))

    def _format(self, raw: bytes) -> str:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        suffix = ""
        if len(raw) > self._max_bytes:
            raw, suffix = raw[: self._max_bytes], _TRUNCATED
        return f"{self._prefix}{raw.decode('utf-8', 'replace')}{suffix}\n"

    def _report_dropped(self) -> None:
        if self._dropped:
            self._emit(f"{self._prefix}({self._dropped} lines of output not shown: too many)\n")
            self._dropped = 0

    def _emit(self, text: str) -> None:
        if self._output is None:
            return
        try:
            self._output.write(text)
            self._output.flush()
        except (OSError, ValueError):
            # A closed or broken output must not take the backend down with it.
            self._output = None


async def pump_lines(stream: asyncio.StreamReader, pump: LinePump) -> None:
    """Reads ``stream`` to its end in large chunks and feeds them to ``pump``."""
    try:
        while chunk := await stream.read(_READ_SIZE):
            pump.feed(chunk)
            # read() returns at once while data is buffered: yield so a flood can't hog the loop.
            await asyncio.sleep(0)
    finally:
        pump.close()
