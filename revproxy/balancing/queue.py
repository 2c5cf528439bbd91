"""Requests waiting for a member under its connection limit: bounded, in order, with a timeout."""

from __future__ import annotations

from collections import deque


class WaitQueue:
    """FIFO of waiters. ``add(waiter)`` returns False when full; a waiter is any object with
    ``wake() -> bool`` (a member may have a free slot: try again; False if it lost the race,
    and it keeps its place) and ``expire()`` (waited too long). ``wake_one()`` is called when a
    slot frees. Deadlines are checked on the given clock."""

    def __init__(self, clock, size: int, timeout: float):
        self._clock = clock
        self.size = size
        self.timeout = timeout
        self._waiters = deque()  # (deadline, waiter)
        self._timer = None

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, waiter) -> bool:
        if len(self._waiters) >= self.size:
            return False
        self._waiters.append((self._clock.seconds() + self.timeout, waiter))
        if self._timer is None:
            self._timer = self._clock.callLater(self.timeout, self._expire)
        return True

    def remove(self, waiter) -> None:
        for entry in self._waiters:
            if entry[1] is waiter:
                self._waiters.remove(entry)
                return

    def wake_one(self) -> None:
        """A slot freed: the oldest waiter tries again (it re-queues itself if it loses)."""
        if self._waiters:
            entry = self._waiters.popleft()
            if not entry[1].wake():
                self._waiters.appendleft(entry)

    def _expire(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        while self._waiters and self._waiters[0][0] <= now:
            _, waiter = self._waiters.popleft()
            waiter.expire()
        if self._waiters:
            delay = max(0.0, self._waiters[0][0] - now)
            self._timer = self._clock.callLater(delay, self._expire)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
