"""Rate limits as a built-in ``request_head`` hook: token buckets per key, per route or global.

Each ``[[rate_limits]]`` entry is a ``Limiter``; ``RateLimitHook`` runs the limiters that
apply to the request's route, in config order, before any user hook. A limiter decides:

* under the limit: the request goes on (no Deferred on the local path);
* over it, ``action = "reject"``: 429 with ``Retry-After`` (whole seconds until a token);
* ``"delay"``: the request waits until its token is due (a Deferred), if at most
  ``delay_queue`` requests of that key already wait and the wait is at most ``max_delay``;
  else 429 as above (nginx's ``limit_req burst=... delay=...``);
* ``"detect"``: the request goes on; it is counted and logged (one line a second at most).

``unit = "bytes"`` limits count the response body bytes sent to the client (as the access
log's bytes field), charged when the request ends (``request_end``): a response may take
the bucket into debt, and the key's new requests are refused until time has repaid it.
Shared limits (``shared = true``) count in memcached windows (``revproxy.protection.shared``)
and fall back to the local bucket while memcached does not answer.
"""

from __future__ import annotations

import math
from email.utils import formatdate

from twisted.internet import task
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.interfaces import IRequestHook

from revproxy.pipeline.hooks import Answer, RequestHook
from revproxy.protection.buckets import BucketTable
from revproxy.protection.shared import expire_of, window_of

log = Logger(namespace="revproxy.ratelimit")

_BODY = b"429 Too Many Requests\n"
REFUSED_NOTE = "rate_limited"  # ctx.notes key: the name of the limit that answered 429


def too_many(limit_name: str, wait: float, now: float) -> Answer:
    """The 429 answer: ``Retry-After`` is ``wait`` rounded up to whole seconds (at least 1)."""
    retry = max(1, int(math.ceil(wait)))
    return Answer(429, headers=(
        (b"date", formatdate(now, usegmt=True).encode("ascii")),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"retry-after", b"%d" % retry),
    ), body=_BODY, reason="rate limit %s: retry after %ds" % (limit_name, retry))


class Limiter:
    """One ``[[rate_limits]]`` entry: its spec (``revproxy.config.model.RateLimit``), its
    buckets (a ``BucketTable``, kept across reloads while the spec is unchanged), the key
    function and, for shared limits, the ``SharedCounters``. ``counts`` holds what it
    decided: admitted, rejected, delayed, detected, local_fallbacks."""

    def __init__(self, spec, key, clock, table=None, counts=None, shared=None) -> None:
        self.spec = spec
        self.name = spec.name
        self.key = key
        self.clock = clock
        self.table = table if table is not None else BucketTable(spec.rate, spec.burst,
                                                                 spec.max_keys)
        self.counts = counts if counts is not None else dict.fromkeys(
            ("admitted", "rejected", "delayed", "detected", "local_fallbacks"), 0)
        self.shared = shared if spec.shared else None
        self.bytes = spec.unit == "bytes"
        self.width, self.allowance = window_of(spec.rate, spec.burst)
        self._plain = self.shared is None and not self.bytes and spec.action != "delay"
        self._buckets = self.table._buckets
        self._rate, self._burst = spec.rate, spec.burst
        # The key is the TCP peer's address: read it here rather than through self.key.
        self._peer_key = getattr(key, "peer_address", False)
        self._log_at = 0.0
        self._unlogged = 0

    # -- request_head ----------------------------------------------------------------------
    def check(self, ctx, now):
        """None (go on), an ``Answer`` (429), or a Deferred of one of those."""
        key = ctx.peer.client_ip if self._peer_key else self.key(ctx)
        if key is None:
            return None  # the request lacks a part of the key: not counted
        if self._plain:
            # The common case (local, requests, reject or detect), one call shorter: the
            # bucket of a known key straight from the table (as BucketTable.get does).
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self.table.get(key, now)
            else:
                self._buckets.move_to_end(key)
            wait = bucket.take(self._rate, self._burst, now)
            if wait:
                return self._over(key, wait, now)
            self.counts["admitted"] += 1
            return None
        shared = self.shared
        if shared is not None and shared.usable(now):
            window = int(now // self.width)
            d = shared.add(shared.name(self.name, key, window), 0 if self.bytes else 1,
                           expire_of(self.width))
            return d.addCallback(self._shared_decided, ctx, key, now, window)
        return self._local(ctx, key, now)

    def _local(self, ctx, key, now):
        spec = self.spec
        bucket = self.table.get(key, now)
        if self.bytes:
            wait = bucket.owing(spec.rate, spec.burst, now)
        elif spec.action == "delay":
            wait = bucket.reserve(spec.rate, spec.burst, now, spec.delay_queue, spec.max_delay)
            if wait is None:
                return self._over(key, bucket.take(spec.rate, spec.burst, now), now)
            if wait > 0:
                self.counts["delayed"] += 1
                return task.deferLater(self.clock, wait, _go_on)
            self.counts["admitted"] += 1
            return None
        else:
            wait = bucket.take(spec.rate, spec.burst, now)
        if wait > 0:
            return self._over(key, wait, now)
        self.counts["admitted"] += 1
        return None

    def _shared_decided(self, count, ctx, key, now, window):
        if count is None:
            self.counts["local_fallbacks"] += 1
            return self._local(ctx, key, now)
        over = count >= self.allowance if self.bytes else count > self.allowance
        if not over:
            self.counts["admitted"] += 1
            return None
        return self._over(key, (window + 1) * self.width - now, now)

    def _over(self, key, wait, now):
        if self.spec.action == "detect":
            self.counts["detected"] += 1
            self._unlogged += 1
            if now >= self._log_at:
                log.info("rate limit {name} exceeded (detect only): {n} requests over it "
                         "since the last line, the last by key {key!r}", name=self.name,
                         n=self._unlogged, key=key)
                self._unlogged = 0
                self._log_at = now + 1.0
            return None
        self.counts["rejected"] += 1
        return too_many(self.name, wait, now)

    # -- request_end (byte limits) ---------------------------------------------------------
    def charge(self, ctx, now) -> None:
        """Count the response body bytes of a finished request."""
        sent = ctx.bytes_sent
        if not sent:
            return
        key = self.key(ctx)
        if key is None:
            return
        shared = self.shared
        if shared is not None and shared.usable(now):
            window = int(now // self.width)
            shared.add(shared.name(self.name, key, window), sent, expire_of(self.width))
            return
        spec = self.spec
        self.table.get(key, now).charge(spec.rate, spec.burst, now, sent)

    def stats(self) -> dict:
        out = dict(self.counts)
        out["keys"] = len(self.table)
        out["evicted"] = self.table.evicted
        return out


def _go_on():
    return None


@implementer(IRequestHook)
class RateLimitHook(RequestHook):
    """Every limiter of a runtime, in config order, as one ``request_head`` hook.

    ``by_route`` maps a route name to the limiters that apply to it; a route not in it (and
    a request without a route) gets ``everywhere`` (the limiters with no ``routes``)."""

    name = "rate-limits"

    def __init__(self, limiters, route_names, clock, shared=None) -> None:
        self.limiters = tuple(limiters)
        self.clock = clock
        self._seconds = clock.seconds
        self.shared = shared
        self.everywhere = tuple(lim for lim in self.limiters if not lim.spec.routes)
        self.by_route = {}
        for route in route_names:
            chosen = tuple(lim for lim in self.limiters
                           if not lim.spec.routes or route in lim.spec.routes)
            if chosen != self.everywhere:
                self.by_route[route] = chosen

    def request_head(self, ctx):
        route = ctx.route
        if route is None or not self.by_route:
            limiters = self.everywhere
        else:
            limiters = self.by_route.get(route.name, self.everywhere)
        if not limiters:
            return None
        if len(limiters) == 1:  # the common case, without the loop
            result = limiters[0].check(ctx, self._seconds())
            if result is None:
                return None
            if isinstance(result, Answer):
                ctx.note(REFUSED_NOTE, limiters[0].name)
                return result
            return result.addCallback(self._resume, ctx, limiters, 1)
        return self._run(ctx, limiters, 0)

    def _run(self, ctx, limiters, start):
        now = self._seconds()
        for index in range(start, len(limiters)):
            result = limiters[index].check(ctx, now)
            if result is None:
                continue
            if isinstance(result, Answer):
                ctx.note(REFUSED_NOTE, limiters[index].name)
                return result
            return result.addCallback(self._resume, ctx, limiters, index + 1)
        return None

    def _resume(self, value, ctx, limiters, start):
        if value is not None:
            ctx.note(REFUSED_NOTE, limiters[start - 1].name)
            return value
        return self._run(ctx, limiters, start)

    def stats(self) -> dict:
        """Counts per limit name, and the shared counters' state."""
        out = {lim.name: lim.stats() for lim in self.limiters}
        if self.shared is not None:
            out = {"limits": out, "shared": {
                "outage": self.shared.outage, "outages": self.shared.outages,
                "failures": self.shared.failures}}
        else:
            out = {"limits": out}
        return out

    def close(self):
        """Drop the memcached connections (shared limits); a Deferred or None."""
        if self.shared is not None:
            return self.shared.close()
        return None


class ByteRateLimitHook(RateLimitHook):
    """``RateLimitHook`` with ``request_end``: byte limits charge what was sent. A separate
    class so that request limits alone cost nothing at the end of a request."""

    def __init__(self, limiters, route_names, clock, shared=None) -> None:
        RateLimitHook.__init__(self, limiters, route_names, clock, shared)
        self._byte_everywhere = tuple(lim for lim in self.everywhere if lim.bytes)
        self._byte_by_route = {route: tuple(lim for lim in chosen if lim.bytes)
                               for route, chosen in self.by_route.items()}

    def request_end(self, ctx, status):
        route = ctx.route
        if route is None:
            return None  # refused before routing: no limit applied
        if ctx.notes is not None and REFUSED_NOTE in ctx.notes:
            return None  # our own 429 costs the client nothing
        limiters = self._byte_by_route.get(route.name, self._byte_everywhere)
        if limiters:
            now = self.clock.seconds()
            for limiter in limiters:
                limiter.charge(ctx, now)
        return None
