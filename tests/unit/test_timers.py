"""Coarse deadlines: fire once, at most one resolution late, never early; idle when unwatched."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.timers import Deadlines


class Watched:
    def __init__(self):
        self.deadline = None
        self.fired = []

    def expired(self, now):
        self.fired.append(now)


class DeadlinesTests(unittest.TestCase):
    def test_fires_once_after_deadline_within_resolution(self):
        """An expired deadline fires once, no earlier than set and < resolution late."""
        clock = Clock()
        deadlines = Deadlines(clock, resolution=0.25)
        obj = Watched()
        deadlines.watch(obj)
        obj.deadline = 1.1
        for _ in range(8):
            clock.advance(0.125)
        self.assertEqual(obj.fired, [])
        for _ in range(3):
            clock.advance(0.125)
        self.assertEqual(len(obj.fired), 1)
        self.assertGreaterEqual(obj.fired[0], 1.1)
        self.assertLess(obj.fired[0], 1.1 + 0.25)
        self.assertIsNone(obj.deadline)
        clock.advance(10)
        self.assertEqual(len(obj.fired), 1)

    def test_cleared_deadline_never_fires(self):
        """Setting the deadline back to None cancels it."""
        clock = Clock()
        deadlines = Deadlines(clock)
        obj = Watched()
        deadlines.watch(obj)
        obj.deadline = 1.0
        obj.deadline = None
        clock.advance(5)
        self.assertEqual(obj.fired, [])

    def test_no_tick_when_nothing_watched(self):
        """With nothing watched the tick stops, so an idle proxy schedules nothing."""
        clock = Clock()
        deadlines = Deadlines(clock)
        obj = Watched()
        deadlines.watch(obj)
        deadlines.unwatch(obj)
        clock.advance(1)
        self.assertEqual(clock.getDelayedCalls(), [])
