"""The storing side of the shared cache: whether a response may be kept, and keeping it.

Functions of one ``HttpCache`` (passed as ``cache``: its store, settings, clock, policy view,
tag headers and metrics): a complete response is stored with its ``Vary`` index
(``put_response``), a 206 is combined with the parts stored before it (``put_part``, RFC 9111
§3.3-3.4), a 304 refreshes the stored entry (``updated``, §4.3.4), and ``prepare`` works out
what a response is stored under and for how long, for both the whole and the streamed body.
Policy stays in the pure modules (``storability``, ``freshness``, ``validation``).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from revproxy.cache import freshness, validation
from revproxy.cache.directives import first_field
from revproxy.cache.entry import CacheEntry, VariantIndex
from revproxy.cache.parts import Parts, parse_content_range
from revproxy.cache.storability import private_fields, storable
from revproxy.cache.vary import variant_key, vary_names

log = Logger(namespace="revproxy.cache")

KEEP_STALE = 3600.0  # a stale entry with a validator is kept this long for revalidation
_MAX_VARIANTS = 32
_SET_COOKIE = frozenset([b"set-cookie"])


def may_store(cache, method, status, request_headers, response_headers, route_ttl=None,
              set_cookie="refuse"):
    """(True, reason) when a response may be stored (see ``storability.storable``);
    ``set_cookie`` is the route's ``cache_set_cookie``."""
    policy = cache.policy(response_headers)
    ok, reason = storable(method, status, request_headers, policy, allow_heuristic=True,
                          allow_set_cookie=set_cookie != "refuse")
    if (not ok and route_ttl is not None and policy is response_headers
            and reason == "no explicit freshness and no validator"):
        return True, "route cache_ttl"  # only where a heuristic could have applied
    return ok, reason


def put_response(cache, primary, request_headers, status, reason, headers, body, request_time,
                 response_time, route_ttl=None, set_cookie="refuse"):
    """Store a complete response; returns a Deferred (errors are logged, not raised).
    ``set_cookie="strip"`` stores it without its Set-Cookie fields. ``body`` is bytes, or
    with a streaming store a body in a file (``BodyFill.end()``'s)."""
    prepared = prepare(cache, primary, request_headers, status, headers, response_time,
                       route_ttl, set_cookie)
    if prepared is None:
        return defer.succeed(False)
    key, kept, keep, tags, names = prepared
    entry = CacheEntry(key, status, reason, kept, body, request_time,
                       response_time, cache.clock.seconds(), tags)
    d = cache.store.put(key, entry, keep, entry.tags)
    if names:
        d.addCallback(lambda ok: _index(cache, primary, names, key, keep) if ok else ok)
    d.addCallback(_count_store, cache, entry)
    d.addErrback(lambda f: log.failure("cache store failed for {key!r}", f, key=key))
    return d


def prepare(cache, primary, request_headers, status, headers, response_time, route_ttl,
            set_cookie):
    """(full key, headers to store, ttl, tags, Vary names) of a response to store, or
    None when it must not be kept at all (``Vary: *``, nothing to keep it for)."""
    names = vary_names(headers)
    if names is None:  # Vary: * never matches
        return None
    settings = cache.settings
    policy = cache.policy(headers)
    if route_ttl is not None and policy is headers and not _has_explicit_freshness(headers):
        # (a response governed by a targeted field keeps exactly what that field says)
        headers = policy = list(headers) + [(b"cache-control", b"max-age=%d" % int(route_ttl))]
    lifetime, _ = freshness.freshness_lifetime(
        status, policy, heuristic_fraction=settings.heuristic_fraction,
        heuristic_max=settings.heuristic_max, response_time=response_time)
    keep = max(lifetime, 0.0) + max(
        freshness.stale_while_revalidate(
            policy, default=settings.stale_while_revalidate),
        freshness.stale_if_error(policy, default=settings.stale_if_error),
        KEEP_STALE if _has_validator(headers) else 0.0)
    if keep <= 0:
        return None
    key = variant_key(primary, names, request_headers) if names else primary
    tags = _tags(cache.tag_headers, headers)
    dropped = cache.tag_headers | private_fields(policy)  # tags are not relayed
    if set_cookie == "strip":
        dropped = dropped | _SET_COOKIE
    kept = [h for h in headers if h[0] not in dropped]
    return key, kept, keep, tags, names


def may_store_part(cache, request_headers, response_headers, set_cookie="refuse"):
    """(True, reason) when a 206 may be stored as a part of its response (RFC 9111
    §3.3-3.4): a single ``Content-Range`` with a known length within ``max_object``, a
    strong ETag to combine parts by, no ``Vary``, and storable as its 200 would be."""
    content_range = parse_content_range(first_field(response_headers, b"content-range"))
    if content_range is None:
        return False, "206 without one Content-Range of known length"
    if content_range[2] > cache.settings.max_object:
        return False, "206 of a representation larger than max_object"
    if _strong_etag(response_headers) is None:
        return False, "206 without a strong ETag (parts could not be combined)"
    if vary_names(response_headers) != ():
        return False, "206 with Vary (parts are kept for responses without Vary)"
    return storable(b"GET", 200, request_headers, cache.policy(response_headers),
                    allow_heuristic=True, allow_set_cookie=set_cookie != "refuse")


def put_part(cache, primary, request_headers, headers, body, request_time, response_time,
             set_cookie="refuse"):
    """Combine a complete 206 body with what is stored for ``primary`` under the same
    strong ETag (anything else stored there is replaced); once every byte is stored, the
    entry becomes an ordinary 200. A Deferred (errors logged, not raised)."""
    first, last, length = parse_content_range(first_field(headers, b"content-range"))
    if len(body) != last - first + 1:
        return defer.succeed(False)  # a body that disagrees with its Content-Range
    etag = _strong_etag(headers)
    kept = [h for h in headers if h[0] != b"content-range"]

    def merge(current):
        parts = Parts(length)
        if isinstance(current, CacheEntry) and _strong_etag(current.headers) == etag:
            if current.status != 206:
                return False  # the whole response is stored already
            try:
                old = Parts.unpack(current.body)
            except ValueError:
                old = None
            if old is not None and old.length == length:
                parts = old
        parts = parts.add(first, body)
        if parts.complete:
            return put_response(cache, primary, request_headers, 200, b"OK", kept,
                                parts.chunks[0][1], request_time, response_time,
                                None, set_cookie)
        return put_response(cache, primary, request_headers, 206, b"Partial Content", kept,
                            parts.pack(), request_time, response_time, None,
                            set_cookie)

    d = cache.store.get(primary)
    d.addCallback(merge)
    d.addErrback(lambda f: log.failure("cache part store failed for {key!r}", f,
                                       key=primary))
    return d


def updated(cache, entry, not_modified_headers, request_time, response_time):
    """The stored entry refreshed by a 304 (RFC 9111 §4.3.4), stored again."""
    headers = validation.update_stored_headers(entry.headers, not_modified_headers)
    private = private_fields(cache.policy(headers))
    if private:
        headers = [h for h in headers if h[0] not in private]
    fresh = entry.replace(headers=headers, request_time=request_time,
                          response_time=response_time, stale=False)
    cache.metrics["revalidations"] += 1
    lifetime, _ = freshness.freshness_lifetime(
        fresh.status, cache.policy(headers),
        heuristic_fraction=cache.settings.heuristic_fraction,
        heuristic_max=cache.settings.heuristic_max, response_time=response_time)
    keep = max(lifetime, 0.0) + (KEEP_STALE if _has_validator(headers) else 0.0)
    if keep > 0:
        cache.store.put(fresh.key, fresh, keep, fresh.tags).addErrback(
            lambda f: log.failure("cache update failed", f))
    return fresh


def _index(cache, primary, names, key, keep):
    d = cache.store.get(primary)

    def update(current):
        if isinstance(current, VariantIndex) and current.vary == names:
            index = current.with_key(key, _MAX_VARIANTS)
        else:
            index = VariantIndex(primary, names, (key,))
        return cache.store.put(primary, index, keep)

    return d.addCallback(update)


def _count_store(ok, cache, entry):
    if ok:
        cache.metrics["stored"] += 1
        cache.metrics["bytes_stored"] += entry.size
    else:
        cache.metrics["not_stored"] += 1
    return ok


def _tags(tag_headers, headers):
    tags = []
    for name, value in headers:
        if name in tag_headers:
            tags.extend(t for t in value.replace(b",", b" ").split() if t)
    return tags


def _strong_etag(headers):
    """The ETag value when it is one strong entity-tag (``"x"``, not ``W/"x"``), else None."""
    etag = first_field(headers, b"etag")
    if etag is None:
        return None
    etag = etag.strip(b" \t")
    if len(etag) < 2 or etag[:1] != b'"' or etag[-1:] != b'"' or b'"' in etag[1:-1]:
        return None
    return etag


def _has_validator(headers) -> bool:
    return any(name in (b"etag", b"last-modified") for name, _ in headers)


def _has_explicit_freshness(headers) -> bool:
    for name, value in headers:
        if name == b"expires":
            return True
        if name == b"cache-control" and (b"max-age" in value.lower()):
            return True
    return False
