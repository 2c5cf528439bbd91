"""Token buckets (pure arithmetic on a ``now`` given in seconds) and a bounded table of them.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second. A request costing
``cost`` passes when the bucket holds that many; then they are taken. Over any interval of
length ``t`` a bucket lets through at most ``rate * t + burst`` tokens' worth (it starts
full, and cannot hold more than ``burst``).

Two more uses of the same state:

* *debt*: byte limits charge a response's bytes once it is complete (``charge``), which may
  take the bucket below zero; new requests are refused until the debt is repaid by time.
* *reservations* (action "delay"): ``reserve`` takes a token that is not there yet, up to a
  queue depth; the caller waits until the bucket would have held it.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """One key's bucket: ``tokens`` as of ``stamp`` (seconds). Starts full."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now

    def refill(self, rate: float, burst: float, now: float) -> float:
        """Bring ``tokens`` up to ``now`` (never above ``burst``, never down: a clock that
        goes back adds nothing); returns the tokens."""
        elapsed = now - self.stamp
        if elapsed > 0:
            tokens = self.tokens + elapsed * rate
            self.tokens = burst if tokens > burst else tokens
            self.stamp = now
        return self.tokens

    def take(self, rate: float, burst: float, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if they are there: 0.0 then. Else nothing is taken and the
        result is the wait in seconds until they would be (> 0)."""
        # refill() inlined: this is the per-request path of every request limit.
        tokens = self.tokens
        elapsed = now - self.stamp
        if elapsed > 0:
            tokens += elapsed * rate
            if tokens > burst:
                tokens = burst
            self.stamp = now
        if tokens >= cost:
            self.tokens = tokens - cost
            return 0.0
        self.tokens = tokens
        return (cost - tokens) / rate

    def owing(self, rate: float, burst: float, now: float) -> float:
        """0.0 when the bucket is not in debt (holds 0 tokens or more), else the seconds
        until it is out of debt (> 0)."""
        tokens = self.refill(rate, burst, now)
        if tokens >= 0:
            return 0.0
        return (-tokens) / rate

    def charge(self, rate: float, burst: float, now: float, cost: float) -> None:
        """Take ``cost`` tokens unconditionally: the bucket may go into debt."""
        self.tokens = self.refill(rate, burst, now) - cost

    def reserve(self, rate: float, burst: float, now: float, queue: int, max_wait: float):
        """Take one token, now or from the future: the wait in seconds (0.0: go now), or
        None when it would make more than ``queue`` requests wait or wait over ``max_wait``
        (then nothing is taken)."""
        tokens = self.refill(rate, burst, now)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        after = tokens - 1.0
        wait = -after / rate
        if -after > queue or wait > max_wait:
            return None
        self.tokens = after
        return wait

    def full(self, rate: float, burst: float, now: float) -> bool:
        return self.refill(rate, burst, now) >= burst


class BucketTable:
    """Buckets by key, at most ``max_keys`` of them: the least recently used one goes first.

    An evicted bucket that had refilled to ``burst`` loses nothing (a new one starts full);
    one evicted earlier forgives what that key had used, which needs ``max_keys`` other keys
    to be seen within ``burst / rate`` seconds. ``evicted`` counts evictions.
    """

    __slots__ = ("rate", "burst", "max_keys", "evicted", "_buckets")

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.evicted = 0
        self._buckets = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key, now: float) -> TokenBucket:
        """The bucket of ``key`` (a new full one when unknown), now the most recently used."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(self.burst, now)
            if len(buckets) > self.max_keys:
                buckets.popitem(last=False)
                self.evicted += 1
        else:
            buckets.move_to_end(key)
        return bucket

    def peek(self, key):
        """The bucket of ``key`` or None; its place in the order is unchanged."""
        return self._buckets.get(key)
