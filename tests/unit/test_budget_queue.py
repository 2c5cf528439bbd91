"""Retry budget arithmetic and the member-slot wait queue, on explicit times / a fake clock."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.balancing.budget import RetryBudget
from revproxy.balancing.queue import WaitQueue


class RetryBudgetTests(unittest.TestCase):
    def test_floor_allows_a_few_retries_on_a_quiet_pool(self):
        """With no traffic, the floor (3 per window) still allows retries, then refuses."""
        budget = RetryBudget(0.2, window=10, floor=3)
        self.assertEqual([budget.try_retry(0.0) for _ in range(4)], [True, True, True, False])

    def test_ratio_of_requests(self):
        """100 requests in the window allow 20 retries at a 0.2 ratio, not 21."""
        budget = RetryBudget(0.2, window=10, floor=3)
        for i in range(100):
            budget.request(i * 0.05)
        granted = sum(budget.try_retry(5.0) for _ in range(30))
        self.assertEqual(granted, 20)

    def test_window_slides(self):
        """Retries older than the window no longer count."""
        budget = RetryBudget(0.0, window=10, floor=1)
        self.assertTrue(budget.try_retry(0.0))
        self.assertFalse(budget.try_retry(5.0))
        self.assertTrue(budget.try_retry(11.0))

    @settings(max_examples=100)
    @given(st.lists(st.tuples(st.booleans(), st.floats(0, 0.5)), max_size=200),
           st.floats(0.0, 1.0))
    def test_never_more_than_ratio_plus_floor(self, ops, ratio):
        """Within one window, granted retries never exceed max(floor, ratio x requests)."""
        budget = RetryBudget(ratio, window=10, floor=3)
        now, requests, granted = 0.0, 0, 0
        for is_request, step in ops:
            now = min(now + step, 9.0)
            if is_request:
                budget.request(now)
                requests += 1
            elif budget.try_retry(now):
                granted += 1
                self.assertLessEqual(granted, max(3, ratio * requests))


class Waiter:
    def __init__(self, wins=True):
        self.woken = 0
        self.expired = False
        self.wins = wins

    def wake(self):
        self.woken += 1
        return self.wins

    def expire(self):
        self.expired = True


class WaitQueueTests(unittest.TestCase):
    def test_bounded(self):
        """A full queue refuses new waiters."""
        queue = WaitQueue(Clock(), size=2, timeout=5)
        self.assertTrue(queue.add(Waiter()))
        self.assertTrue(queue.add(Waiter()))
        self.assertFalse(queue.add(Waiter()))

    def test_fifo_wake_and_lost_race_keeps_place(self):
        """The oldest waiter is woken first; one that loses the race stays at the front."""
        clock = Clock()
        queue = WaitQueue(clock, size=5, timeout=5)
        first, second = Waiter(wins=False), Waiter()
        queue.add(first)
        queue.add(second)
        queue.wake_one()
        self.assertEqual((first.woken, second.woken), (1, 0))
        first.wins = True
        queue.wake_one()
        self.assertEqual((first.woken, second.woken), (2, 0))
        queue.wake_one()
        self.assertEqual(second.woken, 1)

    def test_timeout_expires_in_order(self):
        """Each waiter expires queue_timeout after it joined, not before."""
        clock = Clock()
        queue = WaitQueue(clock, size=5, timeout=5)
        a = Waiter()
        queue.add(a)
        clock.advance(2)
        b = Waiter()
        queue.add(b)
        clock.advance(2.9)
        self.assertFalse(a.expired)
        clock.advance(0.2)
        self.assertTrue(a.expired)
        self.assertFalse(b.expired)
        clock.advance(2)
        self.assertTrue(b.expired)
        self.assertEqual(clock.getDelayedCalls(), [])
