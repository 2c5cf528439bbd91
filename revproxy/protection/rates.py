"""Minimum data rates, as pure decisions over (bytes moved, elapsed seconds).

The model (like Apache's mod_reqtimeout ``MinRate``, measured per window rather than per
read as nginx's ``send_timeout``): a transfer in which the CLIENT is the bottleneck is
measured over consecutive windows of ``window`` seconds (``[limits] min_rate_grace``). At the
end of each window the bytes the client moved during it, divided by the window's real length,
must reach the minimum rate; otherwise the client is too slow and is cut off. A window starts
when the client became the bottleneck (a request body began, or our output to it stopped
draining) and again after each check, so a client gets a whole window of grace before the
first verdict and a brief stall is forgiven as long as the window's total keeps up.
"""

from __future__ import annotations

from typing import Optional


def shortfall(moved: int, elapsed: float, min_rate: int) -> Optional[float]:
    """None when ``moved`` bytes in ``elapsed`` seconds keep up with ``min_rate`` bytes/s (or
    the rate is off: 0), else the measured rate in bytes/s (what the log line reports)."""
    if min_rate <= 0 or elapsed <= 0:
        return None
    if moved >= min_rate * elapsed:
        return None
    return max(moved, 0) / elapsed


class RateWindow:
    """One transfer's current measuring window: where it began (time, bytes so far).

    Pure: the caller passes ``now`` and the transfer's running byte total to each call.
    """

    __slots__ = ("min_rate", "window", "started", "mark")

    def __init__(self, min_rate: int, window: float, now: float, total: int):
        self.min_rate = min_rate
        self.window = window
        self.started = now
        self.mark = total

    @property
    def ends(self) -> float:
        """When the current window is over: the time of the next check."""
        return self.started + self.window

    def restart(self, now: float, total: int) -> None:
        """Begin a new window (the client caught up, or a check passed)."""
        self.started = now
        self.mark = total

    def check(self, now: float, total: int) -> Optional[float]:
        """At the end of a window: None and a new window when the client kept up, else the
        measured rate (bytes/s) of the window that failed."""
        rate = shortfall(total - self.mark, now - self.started, self.min_rate)
        if rate is None:
            self.restart(now, total)
        return rate
