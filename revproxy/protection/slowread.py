"""The response side of ``[limits] min_response_rate``: a client that does not take our output.

A ``DrainWatch`` belongs to one client connection and is armed only while the client is the
bottleneck: when the transport pauses us (more than its buffer size waits for the client), or
when the connection is to be closed with output still unsent (a small response stuck behind a
client that stopped reading would otherwise keep ``loseConnection`` waiting forever). It is
its own object on the shared coarse ``Deadlines`` tick (no per-connection ``callLater``), so it
runs beside the connection's own deadline (idle, header...).

The connection provides ``bytes_taken()`` (what the client really took: written minus what is
still in our buffers or unacknowledged in the kernel's), ``output_waiting()``,
``reader_too_slow(rate, window)``, and for the wait between pipelined requests ``held``,
``behind()`` and ``caught_up()``.
"""

from __future__ import annotations

from revproxy.protection.rates import RateWindow


POLL = 0.5  # how often a connection waiting for the client to catch up is looked at


class DrainWatch:
    """Cuts off a connection whose client takes less than ``min_rate`` bytes/s over a window
    of ``window`` seconds while output waits for it (see ``revproxy.protection.rates``;
    ``min_rate`` 0: never cut). While the connection waits for the client to take a response
    before its next request (``conn.held``), it is also looked at every ``POLL`` seconds and
    told ``conn.caught_up()`` once the client has taken enough."""

    __slots__ = ("_conn", "_deadlines", "_clock", "_window", "deadline")

    def __init__(self, conn, deadlines, clock, min_rate: int, window: float):
        self._conn = conn
        self._deadlines = deadlines
        self._clock = clock
        self._window = RateWindow(min_rate, window, 0.0, 0)
        self.deadline = None  # Deadlines calls expired() after it

    @property
    def active(self) -> bool:
        return self.deadline is not None

    def start(self) -> None:
        """The client became the bottleneck: measure from now (no-op when already watching)."""
        now = self._clock.seconds()
        if self.deadline is not None:
            self._next(now)  # the same window; polled from now on if the connection is held
            return
        window = self._window
        window.restart(now, self._conn.bytes_taken())
        self._next(now)
        self._deadlines.watch(self)

    def stop(self) -> None:
        """The client caught up (or the connection is gone)."""
        self.deadline = None
        self._deadlines.unwatch(self)

    def _next(self, now: float) -> None:
        ends = self._window.ends
        self.deadline = min(ends, now + POLL) if self._conn.held else ends

    def expired(self, now: float) -> None:
        conn = self._conn
        if conn.held and not conn.behind():
            self.stop()
            conn.caught_up()
            return
        if not conn.output_waiting():
            self.stop()
            return
        window = self._window
        if now < window.ends:
            self._next(now)
            return
        elapsed = now - window.started
        rate = window.check(now, conn.bytes_taken())
        if rate is None:
            self._next(now)
            return
        self.stop()
        conn.reader_too_slow(rate, elapsed)
