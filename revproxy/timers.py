"""Coarse deadlines for many connections, checked by one periodic tick.

A proxy connection changes deadline several times per request (idle, head, body; connect,
first byte, read, pooled idle). With one ``DelayedCall`` each, that is several heap pushes and
cancellations per request: about a quarter of the proxy's own CPU time in a profile of the
1 KiB benchmark. Here a deadline is an attribute write; one tick every ``resolution`` seconds
fires the expired ones, so a deadline fires at most ``resolution`` seconds late.
"""

from __future__ import annotations


class Deadlines:
    """Watches objects with a ``deadline`` attribute (absolute seconds, or None) and an
    ``expired(now)`` method, called once when the deadline has passed."""

    def __init__(self, clock, resolution: float = 0.25):
        self._clock = clock
        self.resolution = resolution
        self._watched = set()
        self._tick_call = None

    def watch(self, obj) -> None:
        self._watched.add(obj)
        if self._tick_call is None:
            self._tick_call = self._clock.callLater(self.resolution, self._tick)

    def unwatch(self, obj) -> None:
        self._watched.discard(obj)

    def _tick(self) -> None:
        self._tick_call = None
        now = self._clock.seconds()
        for obj in list(self._watched):
            deadline = obj.deadline
            if deadline is not None and deadline <= now:
                obj.deadline = None
                obj.expired(now)
        if self._watched and self._tick_call is None:
            self._tick_call = self._clock.callLater(self.resolution, self._tick)

    def stop(self) -> None:
        call, self._tick_call = self._tick_call, None
        if call is not None and call.active():
            call.cancel()


class DeadlineMixin:
    """For a protocol watched by ``Deadlines``: one deadline at a time, with a kind.

    Needs ``self._clock``; ``expired(now)`` (the protocol's own) reads ``self._timer_kind``.
    """

    deadline = None
    _timer_kind = None

    def _arm(self, seconds: float, kind: str) -> None:
        self.deadline = self._clock.seconds() + seconds
        self._timer_kind = kind

    def _cancel_timer(self) -> None:
        self.deadline = None
        self._timer_kind = None
