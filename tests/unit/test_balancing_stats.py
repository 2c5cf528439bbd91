"""MemberStats: in-flight counting and the peak-EWMA of response times, on explicit times."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.balancing.stats import MemberStats


def feed(stats, value, start, interval, count):
    """``count`` samples of ``value`` every ``interval`` s after ``start``; the last time."""
    now = start
    for _ in range(count):
        now += interval
        stats.start()
        stats.finish(value, now)
    return now


def samples_until(stats, value, start, interval, predicate, limit=10000):
    """Feed ``value`` every ``interval`` s until ``predicate(stats.ewma)``; the samples taken."""
    now = start
    for taken in range(1, limit + 1):
        now += interval
        stats.start()
        stats.finish(value, now)
        if predicate(stats.ewma):
            return taken
    raise AssertionError("ewma never got there: %r" % (stats.ewma,))


class InFlightTests(unittest.TestCase):
    def test_start_and_finish_count_requests_in_flight(self):
        """start() adds one, finish() and fail() take one off."""
        stats = MemberStats()
        stats.start()
        stats.start()
        stats.start()
        self.assertEqual(stats.in_flight, 3)
        stats.finish(0.01, 1.0)
        stats.fail(2.0, 5.0)
        self.assertEqual(stats.in_flight, 1)

    def test_in_flight_never_goes_negative(self):
        """An unmatched finish leaves in_flight at 0 (policies divide by in_flight + 1)."""
        stats = MemberStats()
        stats.finish(0.01, 1.0)
        self.assertEqual(stats.in_flight, 0)

    def test_decay_must_be_positive(self):
        """decay <= 0 or not a number is a ValueError."""
        for decay in (0, -1.0, "5", True):
            self.assertRaises(ValueError, MemberStats, decay)


class PeakEwmaTests(unittest.TestCase):
    def test_zero_before_first_response_then_first_sample(self):
        """ewma is 0.0 before any response, then exactly the first sample."""
        stats = MemberStats()
        self.assertEqual(stats.ewma, 0.0)
        stats.start()
        stats.finish(0.25, 100.0)
        self.assertEqual(stats.ewma, 0.25)

    def test_a_slower_sample_is_taken_at_once(self):
        """Peak: a sample above the value replaces it, however little time passed."""
        stats = MemberStats(decay=5.0)
        now = feed(stats, 0.010, 0.0, 0.1, 100)
        stats.start()
        stats.finish(0.300, now)
        self.assertEqual(stats.ewma, 0.300)

    def test_a_faster_sample_decays_by_elapsed_time(self):
        """Below the value: ewma*w + sample*(1-w) with w = exp(-elapsed/decay)."""
        stats = MemberStats(decay=5.0)
        stats.sample(0.100, 0.0)
        stats.sample(0.010, 5.0)
        w = math.exp(-1.0)
        self.assertAlmostEqual(stats.ewma, 0.100 * w + 0.010 * (1 - w), places=12)

    def test_no_time_elapsed_means_no_decay(self):
        """A faster sample at the same instant (or an earlier one) leaves the value alone."""
        stats = MemberStats()
        stats.sample(0.100, 10.0)
        stats.sample(0.010, 10.0)
        stats.sample(0.010, 9.0)
        self.assertEqual(stats.ewma, 0.100)

    def test_recovery_follows_time_not_sample_count(self):
        """50 fast samples over 5 s pull the value down as much as one fast sample at 5 s."""
        many, one = MemberStats(decay=5.0), MemberStats(decay=5.0)
        many.sample(0.100, 0.0)
        one.sample(0.100, 0.0)
        feed(many, 0.010, 0.0, 0.1, 50)
        one.sample(0.010, 5.0)
        self.assertAlmostEqual(many.ewma, one.ewma, places=9)

    def test_failure_counts_as_a_penalty_sample(self):
        """fail(now, penalty) moves the value like a response of ``penalty`` seconds."""
        stats = MemberStats()
        feed(stats, 0.010, 0.0, 0.1, 10)
        stats.start()
        stats.fail(1.1, 5.0)
        self.assertEqual(stats.ewma, 5.0)
        self.assertEqual(stats.in_flight, 0)

    def test_reaction_to_a_member_ten_times_slower(self):
        """At 10 req/s, a 10 ms member turning 100 ms crosses 50 ms on its first slow
        response; back to 10 ms, it falls under 20 ms after decay*ln(9) ≈ 11.0 s (110 samples)."""
        stats = MemberStats(decay=5.0)
        now = feed(stats, 0.010, 0.0, 0.1, 300)
        self.assertAlmostEqual(stats.ewma, 0.010)
        self.assertEqual(samples_until(stats, 0.100, now, 0.1, lambda e: e > 0.050), 1)
        now = feed(stats, 0.100, now + 0.1, 0.1, 50)
        taken = samples_until(stats, 0.010, now, 0.1, lambda e: e < 0.020)
        self.assertEqual(taken, math.ceil(5.0 * math.log(9) / 0.1))

    def test_recovery_time_scales_with_decay(self):
        """Halving decay halves the time to recover (within one sample)."""
        taken = []
        for decay in (10.0, 5.0):
            stats = MemberStats(decay=decay)
            stats.sample(0.100, 0.0)
            taken.append(samples_until(stats, 0.010, 0.0, 0.1, lambda e: e < 0.020))
        self.assertLessEqual(abs(taken[0] / 2.0 - taken[1]), 1)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.floats(0.0, 60.0), st.floats(0.0, 10.0)), min_size=1, max_size=40))
    def test_value_stays_between_the_last_sample_and_the_peak(self, steps):
        """After any samples, last sample <= ewma <= largest sample."""
        stats = MemberStats(decay=2.0)
        now = 0.0
        for gap, value in steps:
            now += gap
            stats.sample(value, now)
        # The tolerance absorbs float rounding in the convex combination.
        self.assertGreaterEqual(stats.ewma, steps[-1][1] * (1 - 1e-12))
        self.assertLessEqual(stats.ewma, max(v for _, v in steps) * (1 + 1e-12))
