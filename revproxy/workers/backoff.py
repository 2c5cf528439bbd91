"""When to restart a worker that exited (pure: times are numbers the caller passes).

A worker that exits is restarted after a delay: 1 s the first time, doubling on each exit
that follows quickly, up to 30 s; a worker that ran for a stable minute starts the sequence
again at 1 s. A crash loop therefore costs at most one start every 30 s, and an occasional
crash is repaired within a second.
"""

from __future__ import annotations

from typing import Optional


class RestartPolicy:
    """The back-off of one worker slot.

    ``started(now)`` when its process starts; ``exited(now)`` when it ends, returning the
    delay in seconds before the next start. ``initial``, ``maximum`` and ``stable`` are in
    seconds.
    """

    def __init__(self, initial: float = 1.0, maximum: float = 30.0, stable: float = 60.0):
        if not 0 < initial <= maximum:
            raise ValueError("expected 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.stable = stable
        self._next = initial
        self._started_at: Optional[float] = None
        self.restarts = 0  # exits followed by a restart, over the slot's life

    def started(self, now: float) -> None:
        self._started_at = now

    def exited(self, now: float) -> float:
        """The delay before restarting, given the process ended at ``now``."""
        if self._started_at is not None and now - self._started_at >= self.stable:
            self._next = self.initial  # it ran long enough: this exit is not a crash loop
        self._started_at = None
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        self.restarts += 1
        return delay
