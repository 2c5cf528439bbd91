"""``GET /metrics``: a Prometheus collector that reads the proxy's own counters at scrape time.

Nothing here runs per request: the request path only bumps plain integers
(``RequestRecorder``, ``MemberStats``, ``MemberPool.connect_errors``, the cache's
``metrics``, the rate limiters' ``counts``, ``Stats``); ``ProxyCollector.collect`` turns them
into metric families when Prometheus scrapes. Each process has its own
``CollectorRegistry`` (never the library's global one). The exposition format is the
library's (``generate_latest``). Every label value comes from the config or the resolver
(route, pool, member, limit names), never from a client.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from revproxy.admin.status import _ACTIVITY, firewall_stats
from revproxy.admin.window import HISTOGRAM_BOUNDS, HISTOGRAM_INDEXES
from revproxy.balancing.member import DISABLED, DOWN, DRAINING, EJECTED, HEALTHY, PROBING

MEMBER_STATES = (HEALTHY, DOWN, EJECTED, PROBING, DRAINING, DISABLED)
_CACHE_COUNTERS = (  # HttpCache.metrics key -> (metric name, help)
    ("stored", "revproxy_cache_stores", "Responses stored in the cache."),
    ("bytes_stored", "revproxy_cache_stored_bytes", "Bytes of the responses stored."),
    ("not_stored", "revproxy_cache_not_stored", "Responses the cache declined to store."),
    ("revalidations", "revproxy_cache_revalidations", "Conditional requests to refresh entries."),
    ("collapsed", "revproxy_cache_collapsed", "Requests that waited for another's fetch."),
    ("invalidations", "revproxy_cache_invalidations", "Entries invalidated by unsafe methods."),
)


class ProxyCollector:
    """Collects from ``control`` (``AdminControl``: the runtime holder, the recorder, the
    reloader) at each scrape."""

    def __init__(self, control):
        self._control = control

    def describe(self):
        return []  # families depend on the config: no description ahead of time

    def collect(self):
        control = self._control
        runtime = control.holder.current
        now = runtime.clock.seconds()
        yield from _requests(control.recorder)
        yield from _members(runtime, now)
        yield from _cache(runtime.cache)
        yield from _process(runtime, control)
        yield from _protection(runtime)


def registry_for(control) -> CollectorRegistry:
    """A registry of its own holding the proxy's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(control))
    return registry


def render(registry) -> bytes:
    return generate_latest(registry)


def _histogram(name, documentation, label, series):
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, histogram in sorted(series.items()):
        if not sum(histogram.counts):
            continue  # a pool whose requests never reached a member
        counts = histogram.counts
        buckets, seen, start = [], 0, 0
        for bound, index in zip(HISTOGRAM_BOUNDS, HISTOGRAM_INDEXES):
            seen += sum(counts[start:index + 1])
            start = index + 1
            buckets.append((repr(bound), seen))
        buckets.append(("+Inf", seen + sum(counts[start:])))
        family.add_metric([value], buckets, histogram.sum)
    return family


def _requests(recorder):
    requests = CounterMetricFamily("revproxy_requests", "Requests answered, by route, status "
                                   "class, pool and member (empty: none involved).",
                                   labels=["route", "code_class", "pool", "member"])
    retries = CounterMetricFamily("revproxy_upstream_retries", "Attempts beyond the first "
                                  "(retries on another member or a fresh connection).",
                                  labels=["pool"])
    if recorder is None:
        yield requests
        yield retries
        return
    for (route, cls, pool, member), count in sorted(recorder.requests().items()):
        requests.add_metric([route, cls, pool, member], count)
    yield requests
    yield _histogram("revproxy_request_duration_seconds", "Time from the request head to the "
                     "end of the response, by route.", "route", recorder.total)
    yield _histogram("revproxy_upstream_duration_seconds", "Time from sending to a member to "
                     "the end of its response, by pool.", "pool", recorder.upstream)
    for pool, count in sorted(recorder.retries.items()):
        retries.add_metric([pool], count)
    yield retries


def _members(runtime, now):
    labels = ["pool", "member"]
    up = GaugeMetricFamily("revproxy_member_up", "1 when the member may take new requests.",
                           labels=labels)
    state = GaugeMetricFamily("revproxy_member_state", "1 for the member's current state.",
                              labels=labels + ["state"])
    in_flight = GaugeMetricFamily("revproxy_member_in_flight", "Requests in flight.",
                                  labels=labels)
    weight = GaugeMetricFamily("revproxy_member_weight", "Effective weight.", labels=labels)
    ewma = GaugeMetricFamily("revproxy_member_ewma_seconds", "Peak-EWMA response time.",
                             labels=labels)
    conns = GaugeMetricFamily("revproxy_member_connections", "Connections to the member.",
                              labels=labels + ["kind"])
    sent = CounterMetricFamily("revproxy_upstream_requests", "Requests sent to the member "
                               "(retries included).", labels=labels)
    failed = CounterMetricFamily("revproxy_upstream_failures", "Requests to the member that "
                                 "failed (connect, timeout, 5xx, broken).", labels=labels)
    connect = CounterMetricFamily("revproxy_upstream_connect_errors", "Connects to the member "
                                  "that failed or timed out.", labels=labels)
    ejections = CounterMetricFamily("revproxy_member_ejections", "Passive-check ejections.",
                                    labels=labels)
    members = GaugeMetricFamily("revproxy_pool_members", "Members in the pool.",
                                labels=["pool"])
    queued = GaugeMetricFamily("revproxy_pool_queue_size", "Requests waiting for a member "
                               "under its connection limit.", labels=["pool"])
    panic = GaugeMetricFamily("revproxy_pool_panic", "1 while the pool is in panic mode.",
                              labels=["pool"])
    for name, pool in sorted(runtime.backends.items()):
        members.add_metric([name], len(pool.members))
        queued.add_metric([name], len(pool.queue))
        panic.add_metric([name], 1 if pool.panicking else 0)
        for member in pool.members:
            key = [name, member.name]
            status = member.state.status(now)
            up.add_metric(key, 1 if member.state.may_take(now) else 0)
            for candidate in MEMBER_STATES:
                state.add_metric(key + [candidate], 1 if candidate == status else 0)
            stats = member.state.stats
            in_flight.add_metric(key, stats.in_flight)
            weight.add_metric(key, member.weight)
            ewma.add_metric(key, stats.ewma)
            conns.add_metric(key + ["open"], member.open)
            conns.add_metric(key + ["idle"], member.idle)
            sent.add_metric(key, stats.requests)
            failed.add_metric(key, stats.failures)
            connect.add_metric(key, member.connect_errors)
            ejections.add_metric(key, member.state.ejections)
    return [up, state, in_flight, weight, ewma, conns, sent, failed, connect, ejections,
            members, queued, panic]


def _cache(cache):
    if cache is None:
        return []
    metrics = cache.metrics
    lookups = CounterMetricFamily("revproxy_cache_lookups", "Cache lookups by result.",
                                  labels=["result"])
    lookups.add_metric(["hit"], metrics["hits"])
    lookups.add_metric(["miss"], metrics["misses"])
    lookups.add_metric(["stale"], metrics["stale_served"])
    families = [lookups]
    for key, name, documentation in _CACHE_COUNTERS:
        families.append(CounterMetricFamily(name, documentation, value=metrics[key]))
    store = cache.store.stats()
    for key, name, documentation in (
            ("evictions", "revproxy_cache_evictions", "Entries evicted to make room."),
            ("expirations", "revproxy_cache_expirations", "Entries dropped past their ttl.")):
        if store.get(key, -1) >= 0:  # a shared store (memcached) cannot count them
            families.append(CounterMetricFamily(name, documentation, value=store[key]))
    for key, name, documentation in (
            ("entries", "revproxy_cache_entries", "Entries in the store."),
            ("bytes", "revproxy_cache_bytes", "Bytes in the store.")):
        if store.get(key, -1) >= 0:
            families.append(GaugeMetricFamily(name, documentation, value=store[key]))
    return families


def _process(runtime, control):
    stats, budget = runtime.stats, runtime.budget
    spool = GaugeMetricFamily("revproxy_spool_bytes", "Bytes of bodies buffered, by where.",
                              labels=["where"])
    spool.add_metric(["memory"], budget.memory_used)
    spool.add_metric(["disk"], budget.disk_used)
    connections = GaugeMetricFamily("revproxy_connections", "Open client connections, by "
                                    "what they are doing.", labels=["state"])
    by_state = dict.fromkeys(_ACTIVITY.values(), 0)
    for conn in list(stats.connections):
        name = _ACTIVITY.get(getattr(conn, "activity", None), "other")
        by_state[name] = by_state.get(name, 0) + 1
    for name, count in sorted(by_state.items()):
        connections.add_metric([name], count)
    shed = CounterMetricFamily("revproxy_connections_shed", "Idle keep-alive connections "
                               "closed to admit new ones.", value=stats.shed)
    cuts = CounterMetricFamily("revproxy_slow_client_cuts", "Clients cut off for sending or "
                               "reading too slowly.", labels=["direction"])
    cuts.add_metric(["request"], getattr(stats, "slow_request_cuts", 0))
    cuts.add_metric(["response"], getattr(stats, "slow_response_cuts", 0))
    reloads = CounterMetricFamily("revproxy_reloads", "Configurations applied by a reload.",
                                  value=control.generation())
    return [spool, connections, shed, cuts, reloads]


def _protection(runtime):
    families = []
    hook = runtime.rate_limits
    if hook is not None:
        limited = CounterMetricFamily("revproxy_rate_limit_requests", "Requests seen by each "
                                      "rate limit, by outcome.", labels=["limit", "outcome"])
        for limiter in hook.limiters:
            for outcome, count in sorted(limiter.counts.items()):
                limited.add_metric([limiter.name, outcome], count)
        families.append(limited)
    firewall = firewall_stats(runtime)
    if firewall is not None:
        requests = CounterMetricFamily("revproxy_firewall_requests", "Requests the firewall "
                                       "evaluated, blocked, or would have blocked (detected).",
                                       labels=["outcome"])
        for outcome in ("evaluated", "blocked", "detected"):
            value = firewall.get(outcome)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                requests.add_metric([outcome], value)
        families.append(requests)
    return families
