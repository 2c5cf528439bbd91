"""The admin listener: a small read-only HTTP API (``GET /status``) on its own endpoint.

The operations issue grows it (purge, drain, metrics); today it shows pool and member state:
what each member is (healthy, down, ejected, draining...), its in-flight requests, EWMA,
effective weight and connections. Keep the admin listener on loopback.
"""

from __future__ import annotations

import json

from twisted.web import resource, server

from revproxy.server.mirror import mirror_status


def status_document(runtime, now: float) -> dict:
    """The status as plain data (pure: everything read from ``runtime`` at ``now``)."""
    return {
        "source": runtime.config.source,
        "connections": len(runtime.stats.connections),
        "pools": {name: backend.describe(now) for name, backend in sorted(runtime.backends.items())},
        "cache": _cache_document(runtime.cache),
        "rate_limits": runtime.rate_limits.stats() if runtime.rate_limits is not None else None,
        "mirrors": mirror_status(runtime),
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

    def render_POST(self, request):
        """``POST /purge?url=URL|prefix=PREFIX|tag=TAG[&soft=1]``: purge the cache.

        ``url``: one URL with its variants; ``prefix``: every key starting with it (a URL
        prefix: ``http://host/path/``); ``tag``: every response that carried it in a
        Cache-Tag / Surrogate-Key header. ``soft=1`` marks them stale (revalidated on next
        use) instead of deleting. Answers JSON ``{"purged": N}`` (-1: the store cannot count).
        """
        runtime = self._holder.current
        if request.path.rstrip(b"/") != b"/purge":
            return _plain(request, 404, b"not found: POST /purge\n")
        if runtime.cache is None:
            return _plain(request, 409, b"no [cache] store configured\n")
        args = request.args
        soft = args.get(b"soft", [b"0"])[0] in (b"1", b"true", b"yes")
        chosen = [name for name in (b"url", b"prefix", b"tag") if name in args]
        if len(chosen) != 1:
            return _plain(request, 400, b"give exactly one of url=, prefix=, tag=\n")
        value = args[chosen[0]][0]
        if chosen[0] == b"url":
            key = _url_key(value, runtime.cache.settings)
            if key is None:
                return _plain(request, 400, b"url must be http(s)://host/path\n")
            d = runtime.cache.purge_url(key, soft)
        elif chosen[0] == b"prefix":
            d = runtime.cache.store.purge(prefix=value, soft=soft)
        else:
            d = runtime.cache.store.purge(tag=value, soft=soft)

        def done(count):
            request.setHeader(b"content-type", b"application/json")
            request.write(json.dumps({"purged": count}).encode("ascii") + b"\n")
            request.finish()

        def failed(failure):
            request.setResponseCode(500)
            request.write(b"purge failed\n")
            request.finish()

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET

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


def _plain(request, status, body):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return body


def _url_key(url: bytes, settings):
    """The primary cache key of an absolute http or https URL (the scheme is part of the
    key: a page served over an ssl: listener is purged with its https URL), or None."""
    from urllib.parse import urlsplit

    from revproxy.cache.keys import primary_key
    from revproxy.routing.normalize import normalize_target

    try:
        parts = urlsplit(url.decode("ascii"))
        target = normalize_target((parts.path or "/").encode("ascii"))
    except Exception:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = parts.query if "?" in url.decode("ascii") else None
    return primary_key(parts.scheme.encode("ascii"), parts.netloc.encode("ascii"), target.path,
                       query, settings, [])


def admin_site(holder) -> server.Site:
    site = server.Site(StatusResource(holder))
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None
    return site
