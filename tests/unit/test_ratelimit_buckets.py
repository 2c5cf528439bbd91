"""Token-bucket arithmetic (pure, on a fake clock) and the bounded bucket table."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.trial import unittest

from revproxy.protection.buckets import BucketTable, TokenBucket

rates = st.floats(min_value=0.1, max_value=1000.0)
bursts = st.integers(min_value=1, max_value=50).map(float)
gaps = st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=200)


def admitted_times(rate, burst, gaps):
    """Times (fake clock) at which requests arriving after ``gaps`` were admitted."""
    bucket = TokenBucket(burst, 0.0)
    now, passed = 0.0, []
    for gap in gaps:
        now += gap
        if bucket.take(rate, burst, now) == 0.0:
            passed.append(now)
    return passed


class BucketPropertyTests(unittest.TestCase):
    @settings(max_examples=200, deadline=None)
    @given(rates, bursts, gaps)
    def test_never_more_than_rate_times_t_plus_burst(self, rate, burst, gaps):
        """In every interval [a, b] of the request times, at most rate*(b-a) + burst are
        admitted."""
        passed = admitted_times(rate, burst, gaps)
        for i in range(len(passed)):
            for j in range(i, len(passed)):
                count = j - i + 1
                self.assertLessEqual(count, rate * (passed[j] - passed[i]) + burst + 1e-6)

    @settings(max_examples=200, deadline=None)
    @given(rates, bursts, st.floats(min_value=0.0, max_value=100.0),
           st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=20))
    def test_refill_is_monotone_and_capped(self, rate, burst, spent, steps):
        """Without takes, tokens never decrease as time goes on, and never pass burst."""
        bucket = TokenBucket(burst, 0.0)
        bucket.charge(rate, burst, 0.0, spent)
        now, last = 0.0, bucket.tokens
        for step in steps:
            now += step
            tokens = bucket.refill(rate, burst, now)
            self.assertGreaterEqual(tokens, last)
            self.assertLessEqual(tokens, burst)
            last = tokens

    @settings(max_examples=200, deadline=None)
    @given(rates, bursts, gaps)
    def test_a_refusal_says_when_a_token_is_due(self, rate, burst, gaps):
        """A refused take's wait is exactly when the next take succeeds."""
        bucket = TokenBucket(burst, 0.0)
        now = 0.0
        for gap in gaps:
            now += gap
            wait = bucket.take(rate, burst, now)
            if wait > 0:
                self.assertGreater(bucket.take(rate, burst, now + wait * 0.99), 0.0)
                self.assertEqual(bucket.take(rate, burst, now + wait + 1e-9), 0.0)
                return

    @settings(max_examples=100, deadline=None)
    @given(rates, bursts, st.integers(min_value=0, max_value=20),
           st.floats(min_value=0.01, max_value=10.0), gaps)
    def test_reservations_keep_the_rate(self, rate, burst, queue, max_wait, gaps):
        """Delayed requests go at their due times: counting each at the time it goes, still
        at most rate*t + burst in any interval; no wait over max_wait."""
        bucket = TokenBucket(burst, 0.0)
        now, goes = 0.0, []
        for gap in gaps:
            now += gap
            wait = bucket.reserve(rate, burst, now, queue, max_wait)
            if wait is not None:
                self.assertLessEqual(wait, max_wait)
                goes.append(now + wait)
        goes.sort()
        for i in range(len(goes)):
            for j in range(i, len(goes)):
                self.assertLessEqual(j - i + 1, rate * (goes[j] - goes[i]) + burst + 1e-6)


class BucketTests(unittest.TestCase):
    def test_burst_then_rate(self):
        """A full bucket of 3 at 1/s lets 3 pass at once, then one a second."""
        bucket = TokenBucket(3.0, 0.0)
        self.assertEqual([bucket.take(1.0, 3.0, 0.0) for _ in range(3)], [0.0] * 3)
        self.assertAlmostEqual(bucket.take(1.0, 3.0, 0.0), 1.0)
        self.assertAlmostEqual(bucket.take(1.0, 3.0, 0.5), 0.5)
        self.assertEqual(bucket.take(1.0, 3.0, 1.0), 0.0)

    def test_debt_refuses_until_repaid(self):
        """A charge beyond the tokens puts the bucket in debt: owing says for how long."""
        bucket = TokenBucket(100.0, 0.0)
        self.assertEqual(bucket.owing(100.0, 100.0, 0.0), 0.0)
        bucket.charge(100.0, 100.0, 0.0, 400.0)  # 300 in debt at 100/s
        self.assertAlmostEqual(bucket.owing(100.0, 100.0, 1.0), 2.0, places=6)
        self.assertGreater(bucket.owing(100.0, 100.0, 2.9), 0.0)
        self.assertEqual(bucket.owing(100.0, 100.0, 3.01), 0.0)

    def test_reserve_queues_then_refuses(self):
        """At 1/s with burst 1 and a queue of 2: one now, two waiting 1 s and 2 s, then None."""
        bucket = TokenBucket(1.0, 0.0)
        waits = [bucket.reserve(1.0, 1.0, 0.0, 2, 10.0) for _ in range(4)]
        self.assertEqual(waits, [0.0, 1.0, 2.0, None])
        short = TokenBucket(1.0, 0.0)
        short.reserve(1.0, 1.0, 0.0, 5, 0.5)
        self.assertIsNone(short.reserve(1.0, 1.0, 0.0, 5, 0.5))  # would wait 1 s > 0.5

    def test_clock_going_back_adds_nothing(self):
        bucket = TokenBucket(2.0, 10.0)
        bucket.take(1.0, 2.0, 10.0)
        bucket.take(1.0, 2.0, 10.0)
        self.assertEqual(bucket.refill(1.0, 2.0, 5.0), 0.0)


class BucketTableTests(unittest.TestCase):
    def test_bounded_by_max_keys_lru(self):
        """A spray of keys never holds more than max_keys buckets; the least recently used
        key goes first."""
        table = BucketTable(1.0, 5.0, max_keys=3)
        table.get("a", 0.0).take(1.0, 5.0, 0.0)
        table.get("b", 0.0)
        table.get("c", 0.0)
        table.get("a", 0.0)  # a is now the most recent
        for n in range(1000):
            table.get("spray-%d" % n, 0.0)
            self.assertLessEqual(len(table), 3)
        self.assertEqual(table.evicted, 1000)
        self.assertIsNone(table.peek("a"))

    def test_recently_used_survives(self):
        table = BucketTable(1.0, 5.0, max_keys=2)
        used = table.get("a", 0.0)
        used.take(1.0, 5.0, 0.0)
        table.get("b", 0.0)
        table.get("a", 0.0)
        table.get("c", 0.0)  # evicts b
        self.assertIs(table.peek("a"), used)
        self.assertIsNone(table.peek("b"))
