"""The admin listener: a small read-only HTTP API (``GET /status``) on its own endpoint.

The operations issue grows it (purge, drain, metrics); today it shows pool and member state:
what each member is (healthy, down, ejected, draining...), its in-flight requests, EWMA,
effective weight and connections. Keep the admin listener on loopback.
"""

from __future__ import annotations

import json

from twisted.web import resource, server


def status_document(runtime, now: float) -> dict:
    """The status as plain data (pure: everything read from ``runtime`` at ``now``)."""
    return {
        "source": runtime.config.source,
        "connections": len(runtime.stats.connections),
        "pools": {name: backend.describe(now) for name, backend in sorted(runtime.backends.items())},
        "cache": _cache_document(runtime.cache),
    }


def _cache_document(cache):
    if cache is None:
        return None
    document = {"store": cache.settings.store, "metrics": dict(cache.metrics)}
    document["store_stats"] = cache.store.stats()
    return document


class StatusResource(resource.Resource):
    isLeaf = True

    def __init__(self, holder):
        resource.Resource.__init__(self)
        self._holder = holder

    def render_GET(self, request):
        runtime = self._holder.current
        path = request.path.rstrip(b"/")
        if path not in (b"", b"/status"):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found: try /status\n"
        document = status_document(runtime, runtime.clock.seconds())
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def admin_site(holder) -> server.Site:
    site = server.Site(StatusResource(holder))
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None
    return site
