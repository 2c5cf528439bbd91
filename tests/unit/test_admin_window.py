"""The latency buckets and sliding window behind /api/stats percentiles and /metrics."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.admin.window import (
    BOUNDS, GROWTH, HISTOGRAM_BOUNDS, HISTOGRAM_INDEXES, SMALLEST, LatencyWindow, bucket_of,
)

latencies = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)
quantiles = st.sampled_from([0.5, 0.9, 0.99, 0.999, 1.0, 0.01])


def exact(values, q):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def test_bounds_grow_by_at_most_the_growth_factor_and_hold_the_histogram_bounds():
    """Adjacent bounds differ by at most GROWTH; every Prometheus bound is one of them."""
    assert all(b / a <= GROWTH * (1 + 1e-12) for a, b in zip(BOUNDS, BOUNDS[1:]))
    assert [BOUNDS[i] for i in HISTOGRAM_INDEXES] == list(HISTOGRAM_BOUNDS)


@given(st.floats(min_value=0.0, max_value=1000.0, allow_nan=False))
def test_a_value_falls_in_the_bucket_whose_bounds_surround_it(value):
    """bucket i holds BOUNDS[i-1] < v <= BOUNDS[i]."""
    index = bucket_of(value)
    if index < len(BOUNDS):
        assert value <= BOUNDS[index]
    if index > 0:
        assert value > BOUNDS[index - 1]


@settings(max_examples=300)
@given(st.lists(latencies, min_size=1, max_size=300), quantiles)
def test_reported_percentile_is_at_least_the_exact_one_and_within_the_growth_factor(values, q):
    """Nearest-rank percentile from the window: exact <= reported < exact * GROWTH (above
    0.1 ms; below it, within 0.1 ms)."""
    window = LatencyWindow(60)
    for value in values:
        window.add(value, 1000.5)
    reported = window.percentiles(1000.9, (q,))[q]
    truth = exact(values, q)
    assert reported >= truth
    if truth > SMALLEST:
        assert reported <= truth * GROWTH * (1 + 1e-9)
    else:
        assert reported <= SMALLEST


@given(st.lists(st.tuples(st.integers(0, 200), latencies), min_size=1, max_size=200))
def test_only_the_last_window_seconds_count(timed):
    """Values recorded more than `seconds` ago are left out; the rest all count, and the
    largest of them is the 100th percentile."""
    window = LatencyWindow(10)
    timed = sorted(timed)
    for second, value in timed:
        window.add(value, second + 0.25)
    now = timed[-1][0] + 0.5
    live = [value for second, value in timed if second > now - 10]
    assert window.count(now) == len(live)
    # the 100th percentile is the largest value itself (the bucket bound is capped by it)
    assert window.percentiles(now, (1.0,))[1.0] == (max(live) if live else 0.0)


def test_an_empty_window_reports_zero():
    """No traffic for a whole window: every percentile is 0."""
    window = LatencyWindow(5)
    window.add(0.2, 100.0)
    assert window.percentiles(104.9, (0.5,)) == {0.5: 0.2}
    assert window.percentiles(105.0, (0.5,)) == {0.5: 0.0}


def test_a_slot_reused_after_a_lap_starts_from_zero():
    """Second 103 reuses the slot of second 100 (window 3): the old counts are gone."""
    window = LatencyWindow(3)
    for _ in range(5):
        window.add(1.0, 100.0)
    window.add(0.01, 103.0)
    assert window.count(103.0) == 1
    assert window.percentiles(103.0, (0.5,))[0.5] == 0.01
