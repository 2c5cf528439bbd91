"""Retry budget: retries may add at most a share of a pool's requests (as Envoy and Finagle do).

Counts live in one-second buckets over a sliding ``window``; a small floor of retries per window
keeps retrying possible on a quiet pool. Pure: ``now`` is passed in.
"""

from __future__ import annotations


class RetryBudget:
    def __init__(self, ratio: float, window: float = 10.0, floor: int = 3):
        self.ratio = ratio
        self.window = int(window)
        self.floor = floor
        self._requests = {}  # second -> count
        self._retries = {}

    def _trim(self, now: float) -> None:
        oldest = int(now) - self.window
        for buckets in (self._requests, self._retries):
            for second in [s for s in buckets if s <= oldest]:
                del buckets[second]

    def request(self, now: float) -> None:
        """A request (first attempt) started."""
        second = int(now)
        self._requests[second] = self._requests.get(second, 0) + 1

    def try_retry(self, now: float) -> bool:
        """Spend one retry if the budget allows; False means: do not retry."""
        self._trim(now)
        retries = sum(self._retries.values())
        allowed = max(self.floor, self.ratio * sum(self._requests.values()))
        if retries + 1 > allowed:
            return False
        second = int(now)
        self._retries[second] = self._retries.get(second, 0) + 1
        return True
