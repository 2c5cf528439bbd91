"""Minimum data rates: the pure window decisions and the response-side DrainWatch on a Clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.protection.rates import RateWindow, shortfall
from revproxy.protection.slowread import DrainWatch
from revproxy.timers import Deadlines


class ShortfallTests(unittest.TestCase):
    def test_at_or_above_the_rate_passes_below_reports_the_rate(self):
        """Exactly the minimum passes; one byte short reports the measured rate."""
        self.assertIsNone(shortfall(10240, 10.0, 1024))
        self.assertEqual(shortfall(10239, 10.0, 1024), 1023.9)

    def test_zero_rate_is_off(self):
        """min_rate 0 never cuts, even with nothing moved."""
        self.assertIsNone(shortfall(0, 100.0, 0))

    @given(rate=st.integers(1, 10 ** 7), elapsed=st.floats(0.01, 1e4),
           extra=st.integers(0, 10 ** 6))
    def test_a_client_at_or_above_the_minimum_is_never_cut(self, rate, elapsed, extra):
        """Property: moving >= rate * elapsed bytes never yields a verdict."""
        moved = int(rate * elapsed) + 1 + extra
        self.assertIsNone(shortfall(moved, elapsed, rate))

    @given(rate=st.integers(1, 10 ** 7), elapsed=st.floats(0.01, 1e4),
           fraction=st.floats(0.0, 0.999))
    def test_a_client_below_the_minimum_is_cut_with_its_rate(self, rate, elapsed, fraction):
        """Property: moving less than the minimum gives a measured rate below it."""
        moved = int(rate * elapsed * fraction)
        measured = shortfall(moved, elapsed, rate)
        self.assertIsNotNone(measured)
        self.assertLess(measured, rate)


class RateWindowTests(unittest.TestCase):
    def test_a_passing_check_starts_the_next_window(self):
        """A check that keeps up moves the window to (now, total)."""
        window = RateWindow(100, 5.0, now=10.0, total=50)
        self.assertEqual(window.ends, 15.0)
        self.assertIsNone(window.check(15.0, 600))
        self.assertEqual((window.started, window.mark, window.ends), (15.0, 600, 20.0))

    def test_each_window_is_judged_on_its_own_bytes(self):
        """A fast first window does not pay for a stalled second one."""
        window = RateWindow(100, 5.0, now=0.0, total=0)
        self.assertIsNone(window.check(5.0, 10 ** 6))
        self.assertEqual(window.check(10.0, 10 ** 6 + 100), 20.0)

    @given(st.lists(st.tuples(st.floats(0.25, 30.0), st.floats(1.0, 50.0)), max_size=30))
    def test_windows_at_rate_never_fail(self, spells):
        """Property: whatever the window lengths, a transfer moving at least the minimum
        rate in each window always passes."""
        window = RateWindow(1000, 10.0, now=0.0, total=0)
        now, total = 0.0, 0
        for length, factor in spells:
            now += length
            total += int(1000 * length * factor) + 1
            self.assertIsNone(window.check(now, total))


class FakeConnection:
    """What DrainWatch needs of a client connection."""

    def __init__(self):
        self.taken = 0
        self.waiting = True
        self.cut = []
        self.held = False
        self.lag = 0  # bytes still waiting for the client
        self.resumed = 0

    def behind(self):
        return self.lag > 65536

    def caught_up(self):
        self.held = False
        self.resumed += 1

    def bytes_taken(self):
        return self.taken

    def output_waiting(self):
        return self.waiting

    def reader_too_slow(self, rate, window):
        self.cut.append((rate, window))


class DrainWatchTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.deadlines = Deadlines(self.clock)
        self.conn = FakeConnection()
        self.watch = DrainWatch(self.conn, self.deadlines, self.clock, 1000, 10.0)

    def run_for(self, seconds, rate):
        """Advance in 0.25 s ticks, the client taking ``rate`` bytes/s."""
        for _ in range(int(seconds * 4)):
            self.conn.taken += int(rate / 4)
            self.clock.advance(0.25)

    def test_slow_reader_is_cut_after_one_window_not_before(self):
        """A client taking 100 B/s (min 1000) is cut at the end of the first 10 s window,
        with the measured rate."""
        self.watch.start()
        self.run_for(9.75, 100)
        self.assertEqual(self.conn.cut, [])
        self.run_for(0.5, 100)
        self.assertEqual(len(self.conn.cut), 1)
        rate, window = self.conn.cut[0]
        self.assertAlmostEqual(rate, 100, delta=5)
        self.assertAlmostEqual(window, 10.0, delta=0.3)
        self.assertFalse(self.watch.active)

    def test_reader_at_the_minimum_is_never_cut(self):
        """A client taking 1200 B/s is measured window after window and never cut."""
        self.watch.start()
        self.run_for(60, 1200)
        self.assertEqual(self.conn.cut, [])
        self.assertTrue(self.watch.active)

    def test_caught_up_client_stops_the_watch(self):
        """Nothing waiting at a check: the client is not the bottleneck; no verdict."""
        self.watch.start()
        self.conn.waiting = False
        self.run_for(11, 0)
        self.assertEqual(self.conn.cut, [])
        self.assertFalse(self.watch.active)
        self.assertEqual(self.deadlines._watched, set())

    def test_a_stall_inside_a_window_is_forgiven_when_the_total_keeps_up(self):
        """8 s of nothing then 2 s at 6 KiB/s is over 1000 B/s for the window: kept."""
        self.watch.start()
        self.run_for(8, 0)
        self.run_for(2.25, 6144)
        self.assertEqual(self.conn.cut, [])

    def test_start_twice_keeps_the_first_window(self):
        """start() while watching does not push the verdict back."""
        self.watch.start()
        self.run_for(5, 0)
        self.watch.start()
        self.run_for(5.5, 0)
        self.assertEqual(len(self.conn.cut), 1)

    def test_held_connection_is_resumed_soon_after_the_client_catches_up(self):
        """A connection holding its next request is polled (not only at the window's end)
        and resumed within a poll interval once the client has caught up."""
        self.conn.held = True
        self.conn.lag = 10 ** 6
        self.watch.start()
        self.run_for(2, 5000)
        self.assertEqual(self.conn.resumed, 0)
        self.conn.lag = 1000
        self.run_for(0.75, 5000)
        self.assertEqual(self.conn.resumed, 1)
        self.assertFalse(self.watch.active)

    def test_held_slow_reader_is_still_cut_at_the_window_end(self):
        """Polling a held connection does not move its verdict: cut at the first window's end."""
        self.conn.held = True
        self.conn.lag = 10 ** 6
        self.watch.start()
        self.run_for(9.75, 10)
        self.assertEqual(self.conn.cut, [])
        self.run_for(0.5, 10)
        self.assertEqual(len(self.conn.cut), 1)
