"""Per-member request statistics: in-flight count and peak-EWMA response time.

The bookkeeping behind ``IMember.in_flight`` and ``IMember.ewma``. Pure: the caller passes
``now`` (seconds, any monotonic origin), so tests drive it with explicit times.
"""

from __future__ import annotations

from math import exp


class MemberStats:
    """In-flight requests and the peak-EWMA of response times of one member.

    Peak EWMA (Finagle, Linkerd): a sample above the current value replaces it at once, so
    a member turning slow is seen on its first slow response; a sample below it pulls the
    value down with weight ``1 - exp(-elapsed / decay)``, so recovery follows wall time
    (``decay`` seconds per e-fold) whatever the request rate.
    """

    __slots__ = ("decay", "in_flight", "ewma", "last_update", "requests", "failures")

    def __init__(self, decay: float = 5.0):
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not decay > 0:
            raise ValueError("EWMA decay must be a number of seconds > 0, not %r" % (decay,))
        self.decay = float(decay)
        self.in_flight = 0
        self.ewma = 0.0
        self.last_update = None  # time of the last sample; None before the first
        self.requests = 0  # requests sent to the member (retries included), ever
        self.failures = 0  # of them, those that failed (connect, timeout, 5xx...)

    def start(self) -> None:
        """A request was sent to the member."""
        self.in_flight += 1
        self.requests += 1

    def finish(self, duration: float, now: float) -> None:
        """A request ended after ``duration`` seconds (to the response head), at ``now``."""
        self._end()
        self.sample(duration, now)

    def fail(self, now: float, penalty: float) -> None:
        """A request failed at ``now``: counted as a response that took ``penalty`` seconds
        (e.g. the timeout), so a failing member looks slow to latency-aware policies."""
        self.failures += 1
        self._end()
        self.sample(penalty, now)

    def sample(self, value: float, now: float) -> None:
        """Fold one response time into the peak-EWMA."""
        last = self.last_update
        if last is None or value >= self.ewma:
            self.ewma = float(value)
        else:
            # A clock that steps back counts as no time elapsed: the value holds still.
            elapsed = now - last if now > last else 0.0
            weight = exp(-elapsed / self.decay)
            self.ewma = self.ewma * weight + value * (1.0 - weight)
        if last is None or now > last:
            self.last_update = now

    def _end(self):
        # Never negative, even if a caller ends a request twice: policies divide by it.
        if self.in_flight > 0:
            self.in_flight -= 1
