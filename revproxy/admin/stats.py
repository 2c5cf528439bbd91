"""The compact live counters of ``GET /api/stats`` (the dashboard polls them): pure data.

Counters are monotonic over the life of the process (reloads included: they come from the
process-wide ``RequestRecorder`` and the cache metrics that a reload hands on), so a client
diffs two polls for rates. Latency percentiles are over the recorder's sliding window
(the last 60 s): nearest-rank, reported as the upper bound of a bucket (at most 20% above
the exact value; ``revproxy.admin.window``).
"""

from __future__ import annotations

from revproxy.admin.status import firewall_stats


def _ms(percentiles) -> dict:
    return {"p%d" % round(q * 100): round(value * 1000.0, 3) for q, value in percentiles.items()}


def stats_document(runtime, recorder, now: float, wall_time: float) -> dict:
    """The document at ``now`` (the runtime's clock; ``wall_time``: Unix time for the
    ``time`` field). ``recorder`` may be None (no counts: zeros)."""
    if recorder is not None:
        requests = recorder.by_class()
        latency = _ms(recorder.latency.percentiles(now))
        upstream = _ms(recorder.upstream_latency.percentiles(now))
        answered = recorder.by_member()
    else:
        requests = {"total": 0, "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
        latency = upstream = {"p50": 0.0, "p90": 0.0, "p99": 0.0}
        answered = {}
    return {
        "time": round(wall_time, 3),
        "requests": requests,
        "latency_ms": latency,
        "upstream_latency_ms": upstream,
        "members": members_document(runtime, answered, now),
        "cache": cache_counts(runtime.cache),
        "firewall": firewall_counts(runtime),
        "rate_limited": rate_limited(runtime.rate_limits),
        "connections": len(runtime.stats.connections),
    }


def members_document(runtime, answered, now) -> dict:
    """``{pool: {member: {"state", "requests", "errors", "inflight"}}}``: state and
    in-flight live from the balancer, requests and errors (5xx answers) from the recorder."""
    out = {}
    for name, backend in sorted(runtime.backends.items()):
        counts = answered.get(name, {})
        out[name] = {member.name: {
            "state": member.state.status(now),
            "requests": counts.get(member.name, (0, 0))[0],
            "errors": counts.get(member.name, (0, 0))[1],
            "inflight": member.in_flight,
        } for member in backend.members}
    return out


def cache_counts(cache) -> dict:
    if cache is None:
        return {"hits": 0, "misses": 0, "stale": 0, "ratio": 0.0}
    from revproxy.admin.status import hit_ratio

    metrics = cache.metrics
    return {"hits": metrics["hits"], "misses": metrics["misses"],
            "stale": metrics["stale_served"], "ratio": hit_ratio(metrics)}


def firewall_counts(runtime) -> dict:
    """``blocked`` and ``detected`` of the firewall's stats (zeros when it is off)."""
    stats = firewall_stats(runtime) or {}
    return {"blocked": int(stats.get("blocked", 0) or 0),
            "detected": int(stats.get("detected", 0) or 0)}


def rate_limited(hook) -> int:
    """Requests refused by the rate limits so far (delayed ones are in the status)."""
    if hook is None:
        return 0
    return sum(lim.counts["rejected"] for lim in hook.limiters)
