"""A latency histogram with HDR-style log-linear buckets: fixed memory, mergeable, exact counts.

Values are whole microseconds. Below ``2 * 2**precision_bits`` every value has its own bucket;
above, each power of two is cut into ``2**precision_bits`` equal buckets, so a bucket is never
wider than ``1 / 2**precision_bits`` of the values in it (0.4 % with the default 8 bits). A
percentile is reported as the highest value of its bucket (never lower than the truth, as
HdrHistogram does), capped by the exact maximum seen.

Why not the ``hdrhistogram`` package: its ``record_value`` is pure Python and does several times
the work of :meth:`LatencyHistogram.record` (the load runner records every call on its one
event loop), and its wire format (compressed base64) is harder to merge from worker processes
and to read in a JSON report than the sparse ``[[index, count], ...]`` list used here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_PERCENTILES", "LatencyHistogram"]

#: The percentiles of a summary, in the order reports show them.
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

#: The largest value with a bucket of its own: 2**40 µs, about 12.7 days. Larger values are
#: counted in the last bucket (``max`` stays exact).
_MAX_EXPONENT = 40


class LatencyHistogram:
    """Counts of latencies in log-linear buckets (see the module docstring).

    Args:
        precision_bits: buckets per power of two, as a power of two (1 to 12): the relative
            width of a bucket is at most ``2**-precision_bits``.

    Raises:
        ValueError: ``precision_bits`` is out of range.
    """

    __slots__ = ("_bits", "_counts", "_linear", "count", "max", "min", "total")

    def __init__(self, precision_bits: int = 8) -> None:
        if isinstance(precision_bits, bool) or not isinstance(precision_bits, int):
            raise ValueError(f"precision_bits: expected an integer, got {precision_bits!r}")
        if not 1 <= precision_bits <= 12:
            raise ValueError(f"precision_bits: expected 1 to 12, got {precision_bits}")
        self._bits = precision_bits
        self._linear = 2 << precision_bits  # values below this are exact
        size = self._index(1 << _MAX_EXPONENT) + 1
        self._counts = [0] * size
        self.count = 0
        self.total = 0  # sum of recorded values, for the mean
        self.min = 0
        self.max = 0

    @property
    def precision_bits(self) -> int:
        return self._bits

    def _index(self, value: int) -> int:
        if value < self._linear:
            return value
        shift = value.bit_length() - self._bits - 1
        return (shift << self._bits) + (value >> shift)

    def _bucket_high(self, index: int) -> int:
        """The highest value counted in bucket ``index``."""
        if index < self._linear:
            return index
        shift = (index >> self._bits) - 1
        top = index - (shift << self._bits)
        return ((top + 1) << shift) - 1

    # -- recording ----------------------------------------------------------------------------

    def record(self, value: int) -> None:
        """Counts one value in microseconds (negative values count as 0).

        This is the hot path of the load runner: no validation beyond clamping.
        """
        if value < self._linear:
            if value < 0:
                value = 0
            self._counts[value] += 1
        else:
            index = self._index(value)
            if index >= len(self._counts):
                index = len(self._counts) - 1
            self._counts[index] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def record_seconds(self, seconds: float) -> None:
        """Counts one duration given in seconds (rounded to the microsecond)."""
        self.record(round(seconds * 1_000_000))

    def merge(self, other: LatencyHistogram) -> None:
        """Adds every count of ``other`` (of the same precision) to this histogram.

        Raises:
            ValueError: the precisions differ.
        """
        if other._bits != self._bits:
            raise ValueError(
                f"cannot merge a histogram of precision {other._bits} into one of {self._bits}"
            )
        if other.count == 0:
            return
        counts = self._counts
        for index, n in enumerate(other._counts):
            if n:
                counts[index] += n
        self._add_totals(other.count, other.total, other.min, other.max)

    def _add_totals(self, count: int, total: int, low: int, high: int) -> None:
        if self.count == 0 or low < self.min:
            self.min = low
        self.max = max(self.max, high)
        self.count += count
        self.total += total

    def clear(self) -> None:
        """Forgets every value."""
        self._counts = [0] * len(self._counts)
        self.count = self.total = self.min = self.max = 0

    # -- reading ------------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """The mean in microseconds (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentiles(self, percentiles: Sequence[float]) -> list[int]:
        """The values at these percentiles, in microseconds, in one pass.

        Each is the highest value of the bucket holding the rank ``ceil(p/100 * count)``,
        capped by the maximum. An empty histogram gives zeros.

        Raises:
            ValueError: a percentile is outside 0 to 100.
        """
        for p in percentiles:
            if not 0 <= p <= 100:
                raise ValueError(f"percentile: expected 0 to 100, got {p!r}")
        if self.count == 0:
            return [0] * len(percentiles)
        ranks = sorted(
            (max(1, math.ceil(p / 100 * self.count)), i) for i, p in enumerate(percentiles)
        )
        results = [0] * len(percentiles)
        last = len(self._counts) - 1  # also holds every value beyond the range: use the max
        pending = iter(ranks)
        rank, slot = next(pending)
        seen = 0
        for index, n in enumerate(self._counts):
            if not n:
                continue
            seen += n
            while seen >= rank:
                high = self.max if index == last else self._bucket_high(index)
                results[slot] = min(high, self.max)
                nxt = next(pending, None)
                if nxt is None:
                    return results
                rank, slot = nxt
        return results  # pragma: no cover - ranks never exceed count

    def percentile(self, percentile: float) -> int:
        """The value at one percentile, in microseconds (see :meth:`percentiles`)."""
        return self.percentiles([percentile])[0]

    def summary(self, percentiles: Iterable[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
        """Count, min, mean, max and percentiles, latencies in milliseconds.

        Returns:
            ``{"count", "min_ms", "mean_ms", "p50_ms", ..., "p99.9_ms", "max_ms"}``.
        """
        wanted = list(percentiles)
        values = self.percentiles(wanted)
        result: dict[str, float] = {
            "count": self.count,
            "min_ms": self.min / 1000,
            "mean_ms": round(self.mean / 1000, 4),
        }
        for p, value in zip(wanted, values, strict=True):
            result[f"p{p:g}_ms"] = value / 1000
        result["max_ms"] = self.max / 1000
        return result

    # -- exchange -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: the precision, the totals and the non-empty buckets only."""
        return {
            "precision_bits": self._bits,
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "buckets": [[i, n] for i, n in enumerate(self._counts) if n],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """The histogram that :meth:`to_dict` described.

        Raises:
            ValueError: the data is malformed (a bucket out of range, counts that disagree).
        """
        try:
            histogram = cls(int(data["precision_bits"]))
            buckets = [(int(i), int(n)) for i, n in data["buckets"]]
            count, total = int(data["count"]), int(data["total"])
            low, high = int(data["min"]), int(data["max"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a histogram: {exc}") from None
        size = len(histogram._counts)
        for index, n in buckets:
            if not 0 <= index < size or n < 0:
                raise ValueError(f"not a histogram: bucket {index} with count {n}")
            histogram._counts[index] += n
        if sum(n for _, n in buckets) != count:
            raise ValueError("not a histogram: the bucket counts do not add up to count")
        if count:
            histogram._add_totals(count, total, low, high)
        return histogram

    def __repr__(self) -> str:
        p50, p99 = self.percentiles([50, 99])
        return f"<LatencyHistogram count={self.count} p50={p50}us p99={p99}us max={self.max}us>"
