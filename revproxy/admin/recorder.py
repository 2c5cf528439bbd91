"""Counts of finished requests, kept as plain integers for ``/api/stats`` and ``/metrics``.

``ProxyRequest.response_done`` calls ``RequestRecorder.record`` once per request (after the
``request_end`` hooks, beside the access log); the admin API and the Prometheus collector
read the counts when asked. One recorder lives for the whole process (``Shared``), so the
counts are monotonic across reloads.

Cardinality is bounded: the labels are the route, the status class, the pool and the member
(all named by the config or the resolver, never by a client); past ``max_series`` distinct
combinations, new ones are counted under route ``"other"`` (logged once).
"""

from __future__ import annotations

from bisect import bisect_left

from twisted.logger import Logger

from revproxy.admin.window import BOUNDS, BUCKETS, LatencyWindow

log = Logger(namespace="revproxy.admin")

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
OTHER = "other"


def status_class(status: int) -> str:
    """``"2xx"`` for 200..299 and so on; ``"other"`` outside 100..599."""
    if 100 <= status < 600:
        return CLASSES[status // 100 - 1]
    return OTHER


class Histogram:
    """Counts per latency bucket (``revproxy.admin.window.BOUNDS``), their sum, ever."""

    __slots__ = ("counts", "sum")

    def __init__(self):
        self.counts = [0] * BUCKETS
        self.sum = 0.0


class RequestRecorder:
    """Per-request counters (see the module docstring).

    ``requests``: ``(route, status class, pool, member) -> [n]``; ``total`` and
    ``upstream``: ``Histogram`` by route and by pool; ``retries``: attempts beyond the first,
    by pool; ``latency`` / ``upstream_latency``: ``LatencyWindow`` of the last ``window``
    seconds. ``route``/``pool``/``member`` are ``""`` when the request had none (a 404 with
    no route, a cache hit: no member)."""

    def __init__(self, window: int = 60, max_series: int = 5000):
        self.requests = {}
        self.total = {}
        self.upstream = {}
        self.retries = {}
        self.latency = LatencyWindow(window)
        self.upstream_latency = LatencyWindow(window)
        self.max_series = max_series
        self._warned = False

    def record(self, ctx, status, exchange, now) -> None:
        """One finished request: ``ctx`` its ``RequestContext``, ``status`` what the client
        got (499: it went away), ``exchange`` its ``MemberExchange`` or None, ``now`` the
        clock."""
        route = ctx.route
        route = route.name if route is not None else ""
        if exchange is not None:
            pool = exchange.pool.name
            member = ctx.member or ""
        else:
            pool = member = ""
        key = (route, status_class(status), pool, member)
        counter = self.requests.get(key)
        if counter is None:
            counter = self._new_series(key)
        counter[0] += 1
        elapsed = now - ctx.started_at
        self.latency.add(elapsed, now)
        histogram = self.total.get(route)
        if histogram is None:
            histogram = self.total[route] = Histogram()
        histogram.counts[bisect_left(BOUNDS, elapsed)] += 1
        histogram.sum += elapsed
        if exchange is not None:
            upstream_time = exchange.upstream_time
            if upstream_time is not None:
                self.upstream_latency.add(upstream_time, now)
                histogram = self.upstream.get(pool)
                if histogram is None:
                    histogram = self.upstream[pool] = Histogram()
                histogram.counts[bisect_left(BOUNDS, upstream_time)] += 1
                histogram.sum += upstream_time
            if exchange.attempts > 1:
                self.retries[pool] = self.retries.get(pool, 0) + exchange.attempts - 1

    def _new_series(self, key):
        if len(self.requests) >= self.max_series:
            if not self._warned:
                self._warned = True
                log.warn("admin metrics: more than {n} request series; new ones counted "
                         "under route 'other'", n=self.max_series)
            key = (OTHER, key[1], "", "")
            counter = self.requests.get(key)
            if counter is not None:
                return counter
        counter = self.requests[key] = [0]
        return counter

    # -- reading -------------------------------------------------------------------------------
    def by_class(self) -> dict:
        """``{"total": n, "1xx": n, ... "5xx": n}`` (``other`` only in the total)."""
        out = dict.fromkeys(CLASSES, 0)
        total = 0
        for (_, cls, _, _), (count,) in self.requests.items():
            total += count
            if cls in out:
                out[cls] += count
        out["total"] = total
        return out

    def by_member(self) -> dict:
        """``{pool: {member: (requests, 5xx answers)}}`` of the answers members gave."""
        out = {}
        for (_, cls, pool, member), (count,) in self.requests.items():
            if not member:
                continue
            requests, errors = out.setdefault(pool, {}).get(member, (0, 0))
            out[pool][member] = (requests + count, errors + (count if cls == "5xx" else 0))
        return out
