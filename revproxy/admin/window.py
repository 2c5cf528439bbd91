"""Latency buckets and the sliding window the live percentiles are read from (pure).

A latency (seconds) is counted in the bucket ``bisect_left(BOUNDS, t)``: bucket ``i`` holds
``BOUNDS[i-1] < t <= BOUNDS[i]``, the last one everything above ``BOUNDS[-1]``. The bounds
grow by at most ``GROWTH`` from one to the next between 0.1 ms and 120 s and include the
Prometheus histogram bounds (``HISTOGRAM_BOUNDS``), so one count serves both the live
percentiles and the cumulative histograms of ``/metrics``.

``LatencyWindow`` keeps one array of bucket counts per second for the last ``seconds``
seconds (a ring; a slot is reset when a new second reuses it) and the largest value of each
second. A percentile is the nearest-rank one: the smallest recorded value ``v`` with at least
``q * n`` values ``<= v``; it is reported as the upper bound of the bucket holding that
value, capped by the largest value in the window. So for every value above 0.1 ms the
reported percentile is at least the exact one and less than ``GROWTH`` times it; below
0.1 ms it is within 0.1 ms.
"""

from __future__ import annotations

from bisect import bisect_left
from math import ceil
from typing import Dict, Iterable, List

GROWTH = 1.2
SMALLEST = 0.0001  # 0.1 ms
LARGEST = 120.0
# The buckets /metrics shows (seconds): Prometheus' defaults widened to a minute.
HISTOGRAM_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0)


def _bounds() -> tuple:
    values = set(HISTOGRAM_BOUNDS)
    bound = SMALLEST
    while bound < LARGEST:
        values.add(bound)
        bound *= GROWTH
    values.add(LARGEST)
    return tuple(sorted(values))


BOUNDS = _bounds()
BUCKETS = len(BOUNDS) + 1  # the last one: above LARGEST
HISTOGRAM_INDEXES = tuple(BOUNDS.index(b) for b in HISTOGRAM_BOUNDS)


def bucket_of(seconds: float) -> int:
    """The bucket index of a latency."""
    return bisect_left(BOUNDS, seconds)


def percentile_of_counts(counts: List[int], largest: float, q: float) -> float:
    """The nearest-rank ``q``-percentile (0 < q <= 1) of the values counted in ``counts``
    (one count per bucket), as the upper bound of its bucket capped by ``largest`` (the
    largest value counted); 0.0 when nothing was counted."""
    total = sum(counts)
    if not total:
        return 0.0
    rank = max(1, int(ceil(q * total - 1e-9)))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            upper = BOUNDS[index] if index < len(BOUNDS) else largest
            return min(upper, largest)
    return largest  # not reached: seen ends at total >= rank


class LatencyWindow:
    """The latencies of the last ``seconds`` seconds, one slot per second.

    ``add(value, now)`` costs a bisect and two list writes (a slot is reset at most once a
    second); ``percentiles(now, qs)`` sums the live slots."""

    __slots__ = ("seconds", "_counts", "_stamps", "_largest", "_second", "_current")

    def __init__(self, seconds: int = 60):
        if seconds < 1:
            raise ValueError("a window of at least one second")
        self.seconds = seconds
        self._counts = [[0] * BUCKETS for _ in range(seconds)]
        self._stamps = [None] * seconds  # the second each slot holds
        self._largest = [0.0] * seconds
        self._second = None  # the second of the current slot
        self._current = 0  # its index

    def add(self, value: float, now: float) -> None:
        self.add_at(bisect_left(BOUNDS, value), value, now)

    def add_at(self, bucket: int, value: float, now: float) -> None:
        """``add`` with the bucket of ``value`` already known (``bucket_of(value)``)."""
        second = int(now)
        if second != self._second:
            self._advance(second)
        index = self._current
        self._counts[index][bucket] += 1
        if value > self._largest[index]:
            self._largest[index] = value

    def _advance(self, second: int) -> None:
        index = second % self.seconds
        if self._stamps[index] != second:
            self._stamps[index] = second
            self._counts[index] = [0] * BUCKETS
            self._largest[index] = 0.0
        self._second = second
        self._current = index

    def _live(self, now: float) -> Iterable[int]:
        newest = int(now)
        oldest = newest - self.seconds + 1
        return [i for i, stamp in enumerate(self._stamps)
                if stamp is not None and oldest <= stamp <= newest]

    def counts(self, now: float):
        """(bucket counts summed over the live slots, the largest value among them)."""
        total = [0] * BUCKETS
        largest = 0.0
        for index in self._live(now):
            for bucket, count in enumerate(self._counts[index]):
                if count:
                    total[bucket] += count
            largest = max(largest, self._largest[index])
        return total, largest

    def percentiles(self, now: float, qs=(0.5, 0.9, 0.99)) -> Dict[float, float]:
        """``{q: seconds}`` over the window ending at ``now`` (0.0 when it is empty)."""
        counts, largest = self.counts(now)
        return {q: percentile_of_counts(counts, largest, q) for q in qs}

    def count(self, now: float) -> int:
        """How many values the window ending at ``now`` holds."""
        return sum(self.counts(now)[0])
