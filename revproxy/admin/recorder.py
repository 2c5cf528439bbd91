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


class Series:
    """The counts of one (route, pool, member): ``classes[status // 100]`` (0..9), and the
    route's and the pool's histograms (shared with the other series of that route/pool)."""

    __slots__ = ("classes", "total", "upstream")

    def __init__(self, total, upstream):
        self.classes = [0] * 10
        self.total = total
        self.upstream = upstream

    def by_class(self):
        """``{"1xx": n, ..., "5xx": n, "other": n}`` (only the classes counted)."""
        classes = self.classes
        out = {name: classes[index + 1] for index, name in enumerate(CLASSES)
               if classes[index + 1]}
        other = classes[0] + sum(classes[6:])
        if other:
            out[OTHER] = other
        return out


class RequestRecorder:
    """Per-request counters (see the module docstring).

    ``series``: ``(route, pool, member) -> Series``; ``total`` and ``upstream``:
    ``Histogram`` by route and by pool; ``retries``: attempts beyond the first, by pool;
    ``latency`` / ``upstream_latency``: ``LatencyWindow`` of the last ``window`` seconds.
    ``route``/``pool``/``member`` are ``""`` when the request had none (a 404 with no route,
    a cache hit: no member). ``record`` costs about a microsecond (bench/admin_recorder.py)."""

    def __init__(self, window: int = 60, max_series: int = 5000):
        self.series = {}
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
            key = (route, exchange.pool.name, ctx.member or "")
        else:
            key = (route, "", "")
        series = self.series.get(key)
        if series is None:
            series = self._new_series(key)
        series.classes[status // 100 if 0 <= status < 1000 else 0] += 1
        elapsed = now - ctx.started_at
        index = bisect_left(BOUNDS, elapsed)
        histogram = series.total
        histogram.counts[index] += 1
        histogram.sum += elapsed
        self.latency.add_at(index, elapsed, now)
        if exchange is not None:
            upstream_time = exchange.upstream_time
            if upstream_time is not None:
                index = bisect_left(BOUNDS, upstream_time)
                histogram = series.upstream
                histogram.counts[index] += 1
                histogram.sum += upstream_time
                self.upstream_latency.add_at(index, upstream_time, now)
            if exchange.attempts > 1:
                pool = key[1]
                self.retries[pool] = self.retries.get(pool, 0) + exchange.attempts - 1

    def _new_series(self, key):
        if len(self.series) >= self.max_series:
            if not self._warned:
                self._warned = True
                log.warn("admin metrics: more than {n} request series; new ones counted "
                         "under route 'other'", n=self.max_series)
            key = (OTHER, "", "")
            series = self.series.get(key)
            if series is not None:
                return series
        route, pool, _ = key
        total = self.total.get(route)
        if total is None:
            total = self.total[route] = Histogram()
        upstream = self.upstream.get(pool)
        if upstream is None:
            upstream = self.upstream[pool] = Histogram()
        series = self.series[key] = Series(total, upstream)
        return series

    # -- reading -------------------------------------------------------------------------------
    def requests(self):
        """``{(route, status class, pool, member): n}`` of every count so far."""
        out = {}
        for (route, pool, member), series in self.series.items():
            for cls, count in series.by_class().items():
                out[(route, cls, pool, member)] = count
        return out

    def by_class(self) -> dict:
        """``{"total": n, "1xx": n, ... "5xx": n}`` (``other`` only in the total)."""
        classes = [0] * 10
        for series in self.series.values():
            for index, count in enumerate(series.classes):
                classes[index] += count
        out = {name: classes[index + 1] for index, name in enumerate(CLASSES)}
        out["total"] = sum(classes)
        return out

    def by_member(self) -> dict:
        """``{pool: {member: (requests, 5xx answers)}}`` of the answers members gave."""
        out = {}
        for (_, pool, member), series in self.series.items():
            if not member:
                continue
            requests, errors = out.setdefault(pool, {}).get(member, (0, 0))
            out[pool][member] = (requests + sum(series.classes), errors + series.classes[5])
        return out
