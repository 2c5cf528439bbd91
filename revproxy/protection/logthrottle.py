"""A bound on repetitive log lines: an attacker must not be able to fill the error log."""

from __future__ import annotations


class LogThrottle:
    """At most ``burst`` lines per ``window`` seconds of ``clock``.

    ``allow()`` says whether to write a line now; ``take_suppressed()`` returns (and resets)
    how many were held back since the last line written, for the next line to mention."""

    def __init__(self, clock, burst: int = 10, window: float = 10.0):
        self._clock = clock
        self._burst = burst
        self._window = window
        self._window_start = None
        self._written = 0
        self.suppressed = 0

    def allow(self) -> bool:
        now = self._clock.seconds()
        if self._window_start is None or now - self._window_start >= self._window:
            self._window_start = now
            self._written = 0
        if self._written < self._burst:
            self._written += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count
