"""The status document of ``GET /api/status`` (and its alias ``GET /status``): pure data.

Everything is read from the runtime (and the process-wide ``AdminControl`` when given) at
``now``: listeners, routes, pools and members (state, in-flight, EWMA, weights, operator
overrides, ejections), the cache, the firewall (when the runtime has one), the rate limits,
spool bytes, connections by what they are doing, this process (``workers``), and the
mirror counters of each mirroring route (``mirrors``).
"""

from __future__ import annotations

import os

from revproxy.server.mirror import mirror_status

# what ClientConnection.activity / H2ServerConnection.activity say -> the document's names
_ACTIVITY = {"head": "reading_head", "request": "in_request", "idle": "idle_keepalive",
             "tunnel": "tunnel", "http2": "http2_active", "http2_idle": "http2_idle"}


def status_document(runtime, now: float, control=None) -> dict:
    """The status as plain data (JSON-ready); ``control`` (``AdminControl``) adds the
    reload generation and the admin listeners' addresses."""
    config = runtime.config
    return {
        "source": config.source,
        "generation": control.generation() if control is not None else 0,
        "listeners": {"proxy": list(config.server.listen), "admin": list(config.admin.listen)},
        "routes": [_route(route) for route in config.routes],
        "pools": {name: backend.describe(now)
                  for name, backend in sorted(runtime.backends.items())},
        "cache": cache_document(runtime.cache),
        "firewall": firewall_stats(runtime),
        "rate_limits": runtime.rate_limits.stats() if runtime.rate_limits is not None else None,
        "spool": spool_document(runtime.budget),
        "connections": connections_document(runtime.stats),
        "workers": {"count": 1, "pid": os.getpid()},
        "mirrors": mirror_status(runtime),
    }


def _route(route) -> dict:
    pools = [pool for pool, _ in route.split] if route.split else [route.pool]
    return {"name": route.name, "pools": pools, "hosts": list(route.hosts),
            "path_prefix": route.path_prefix, "path_regex": route.path_regex,
            "methods": list(route.methods), "cache": route.cache}


def cache_document(cache):
    """The cache's counters, its store's, and the derived size and hit ratio (None: off)."""
    if cache is None:
        return None
    metrics = dict(cache.metrics)
    store = cache.store.stats()
    return {"store": cache.settings.store, "metrics": metrics, "store_stats": store,
            "entries": store.get("entries", -1), "bytes": store.get("bytes", -1),
            "hit_ratio": hit_ratio(metrics)}


def hit_ratio(metrics) -> float:
    """Hits (stale ones included) over lookups; 0.0 before the first lookup."""
    hits = metrics.get("hits", 0) + metrics.get("stale_served", 0)
    lookups = hits + metrics.get("misses", 0)
    return round(hits / float(lookups), 4) if lookups else 0.0


def firewall_stats(runtime):
    """``runtime.firewall.stats()`` when the runtime has a firewall, else None."""
    firewall = getattr(runtime, "firewall", None)
    if firewall is None:
        return None
    return firewall.stats()


def spool_document(budget) -> dict:
    return {"memory_bytes": budget.memory_used, "disk_bytes": budget.disk_used,
            "memory_limit": budget.total_memory, "disk_limit": budget.total_disk}


def connections_document(stats) -> dict:
    """Open client connections by what they are doing, and the process-wide cut counts."""
    by_state = dict.fromkeys(_ACTIVITY.values(), 0)
    for conn in list(stats.connections):
        name = _ACTIVITY.get(getattr(conn, "activity", None), "other")
        by_state[name] = by_state.get(name, 0) + 1
    return {"total": len(stats.connections), "by_state": by_state, "shed": stats.shed,
            "slow_request_cuts": getattr(stats, "slow_request_cuts", 0),
            "slow_response_cuts": getattr(stats, "slow_response_cuts", 0)}


def admin_site(holder, control=None):
    """The admin site (moved to ``revproxy.admin.site``; kept here for old imports)."""
    from revproxy.admin.site import admin_site as build

    return build(holder, control)


def _url_key(url, settings):
    """The cache key of a purge URL (moved to ``revproxy.admin.actions.url_key``)."""
    from revproxy.admin.actions import url_key

    return url_key(url, settings)
