"""Shared rate-limit counters in memcached: fixed windows counted with ``incr``/``add``.

A shared limit of ``rate`` per second and ``burst`` counts each key in windows of
``W = max(1 s, burst / rate)`` seconds, numbered from the epoch, so every proxy whose clock
is right (NTP) uses the same window at the same time; a window admits ``allowance =
rate * W`` (= ``burst`` when ``burst / rate >= 1 s``). The counter of a window is the
memcached item ``<prefix><limit>:<key digest>:<window>``, created with ``add`` (expiring
after ``2 W + 1`` s) and grown with ``incr``, which is atomic on the server: the proxies
together admit at most ``allowance`` in one window, and so at most ``2 * allowance`` in any
``W`` seconds that straddle two windows (the usual fixed-window error); the average over a
long time is ``rate``.

When memcached does not answer (down, an error, slower than ``timeout``) the operation's
result is None and the caller decides on its local bucket instead; the counters then stay
local for ``retry_interval`` seconds (no request waits on a dead server meanwhile) before
the next request tries memcached again. The outage is logged once when it starts and once
when memcached answers again.
"""

from __future__ import annotations

import hashlib
import math

from twisted.logger import Logger

from revproxy.protection.ratekeys import key_bytes

log = Logger(namespace="revproxy.ratelimit")


def window_of(rate: float, burst: float):
    """``(W seconds, allowance)`` of a shared limit (see the module's docstring)."""
    width = max(1.0, burst / rate)
    return width, max(1, int(round(rate * width)))


class SharedCounters:
    """Windowed counters on one ``MemcachedClient`` and the outage state shared by every
    shared limit. ``clock`` gives the time (wall-clock seconds in production)."""

    def __init__(self, client, settings, clock) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.prefix = settings.key_prefix.encode("ascii")
        self.retry_at = 0.0  # local only until then
        self.outage = False
        self.outages = 0  # outages seen (each logged once)
        self.failures = 0  # operations that gave no answer

    def usable(self, now: float) -> bool:
        """False while an outage holds the counters local."""
        return now >= self.retry_at

    def name(self, limit: str, key, window: int) -> bytes:
        digest = hashlib.blake2b(key_bytes(key), digest_size=12).hexdigest().encode("ascii")
        return b"%s%s:%s:%d" % (self.prefix, limit.encode("ascii"), digest, window)

    def add(self, name: bytes, cost: int, expire: int):
        """A Deferred of the counter ``name`` after adding ``cost`` (an int; with ``cost`` 0
        a missing counter reads 0 and is not created), or None when memcached gave no
        answer. Never fails."""
        client = self.client
        node = client.node_for(name)

        def incremented(value):
            if value is False:  # no such counter yet
                if cost == 0:
                    return 0
                return client.add(node, name, b"%d" % cost, expire).addCallback(added)
            return value

        def added(stored):
            if stored:
                return cost
            # Another proxy created it between our incr and add: count on it.
            return client.incr(node, name, cost).addCallback(
                lambda value: None if value is False else value)

        return client.incr(node, name, cost).addCallback(incremented).addCallback(self._seen)

    def _seen(self, value):
        if value is None:
            self.failed()
        elif self.outage:
            self.outage = False
            log.info("shared rate limits: memcached answers again; counters are shared again")
        return value

    def failed(self) -> None:
        """An operation gave no answer: local buckets for ``retry_interval``."""
        self.failures += 1
        self.retry_at = self.clock.seconds() + self.settings.retry_interval
        if not self.outage:
            self.outage = True
            self.outages += 1
            log.warn("shared rate limits: memcached gave no answer (down or slower than "
                     "{t}s); each proxy uses its local buckets until it answers",
                     t=self.settings.timeout)

    def close(self):
        return self.client.close()


def expire_of(width: float) -> int:
    """memcached expiry (whole seconds) of a window's counter: long enough for skewed clocks."""
    return int(math.ceil(2 * width)) + 1
