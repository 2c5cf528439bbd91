"""The cache tier of a request: hits, revalidation, collapsing, filling, invalidation.

A mixin of ``ProxyRequest`` (``revproxy.server.proxy``), like ``exchange``: it relies on the
request's attributes and calls back into its path (``_dispatch``, ``writer``, ``_reply``).
Every response that passes through the cache tier carries a ``Cache-Status`` (RFC 9211).
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.cache import freshness, ranges, validation
from revproxy.cache.engine import Found
from revproxy.cache.keys import effective_uri, primary_key
from revproxy.cache.status import cache_status

log = Logger(namespace="revproxy.cache")

_CACHED_METHODS = frozenset([b"GET", b"HEAD"])
UNSAFE_METHODS = frozenset([b"POST", b"PUT", b"DELETE", b"PATCH"])
_CONDITIONALS = frozenset([b"if-none-match", b"if-modified-since", b"if-match",
                           b"if-unmodified-since", b"if-range"])


class CacheState:
    """What the cache tier knows about one request."""

    __slots__ = ("key", "entry", "fwd", "filling", "tee", "tee_size", "store", "revalidating",
                 "request_time", "status_header", "decision", "head", "collapsed")

    def __init__(self, key):
        self.key = key
        self.entry = None  # the stored entry being revalidated (or served)
        self.fwd = None  # Cache-Status fwd reason when going to the origin
        self.filling = False  # this request is the one fetch others wait for
        self.tee = None  # body pieces kept for storing
        self.tee_size = 0
        self.store = False  # the response will be stored
        self.revalidating = False
        self.request_time = 0.0
        self.status_header = None
        self.decision = None
        self.head = None  # the origin's response head
        self.collapsed = False  # waited for another request's fetch


_HIT_STATUS = {}  # (ttl in whole seconds, collapsed) -> Cache-Status value
_HEADS = {}  # (id(entry), age, Cache-Status, method, version, keep-alive) -> (entry, head bytes)


def _hit_status(ttl, collapsed):
    key = (int(ttl // 1), collapsed)
    value = _HIT_STATUS.get(key)
    if value is None:
        if len(_HIT_STATUS) >= 4096:
            _HIT_STATUS.clear()
        value = _HIT_STATUS[key] = cache_status(hit=True, ttl=ttl, collapsed=collapsed)
    return value


def _has_range(headers) -> bool:
    return any(name == b"range" for name, _ in headers)


def _without_range(head):
    """A copy of a request head asking for the whole representation."""
    return head.replace(headers=[h for h in head.headers if h[0] not in (b"range", b"if-range")])


class _Discard:
    """The client side of a background revalidation: everything written is dropped."""

    writing_paused = False
    client_ip = "127.0.0.1"
    client_port = 0
    scheme = "http"

    def __init__(self, runtime):
        self.runtime = runtime

    def write(self, data):
        pass

    def send_continue(self):
        pass

    def set_producer(self, producer):
        pass

    def response_done(self, keep_alive):
        request, self.request = self.request, None
        if request is not None:
            request.response_done()

    def abort_response(self, reason, hard=True):
        self.response_done(False)

    request = None


def background_revalidation(runtime, head, key):
    """Revalidate ``key`` with a copy of ``head``'s request that no client waits for."""
    from revproxy.server.writer import ResponseWriter

    conn = _Discard(runtime)
    writer = ResponseWriter(conn, head.method, head.version, False)
    request = runtime.new_request(conn, head, writer)
    request._background = True
    conn.request = request
    request.begin()
    if not request._done:
        request.body_end()


class CachingMixin:
    __slots__ = ()

    # -- before the origin -------------------------------------------------------------------
    def _cache_applies(self):
        return (self.rt.cache is not None and self.route.cache
                and self.head.method in _CACHED_METHODS)

    def _cache_begin(self):
        head = self.head
        key = primary_key(b"http", head.host, self._path, self._query,
                          self.rt.cache_key_settings(self.route), head.headers)
        self._cache = CacheState(key)
        self._cache_lookup()

    def _cache_lookup(self):
        found = self.rt.cache.lookup(self._cache.key, self.head.headers)
        if isinstance(found, Found):
            self._cache_found(found)
            return
        found.addCallback(self._cache_found)
        found.addErrback(self._cache_broken)

    def _cache_broken(self, failure):
        log.failure("rid={rid} cache lookup failed; going to the origin", failure, rid=self._rid)
        if not self._done:
            self._cache.fwd = "miss"
            self._dispatch()

    def _cache_found(self, found):
        if self._done:
            return
        cache, state = self.rt.cache, self._cache
        now = self.rt.clock.seconds()
        entry = found.entry
        if entry is not None:
            decision = cache.decide(entry, self.head.headers, now)
            state.decision = decision
            if decision.usable:
                cache.metrics["hits"] += 1
                self._serve_entry(entry, decision.age, _hit_status(decision.ttl, state.collapsed))
                return
            if decision.kind == "bypass":
                state.fwd = "request"
                self._dispatch()
                return
            if decision.only_if_cached:
                self._reply(504, "only-if-cached and the stored response is stale")
                return
            if (decision.kind == "revalidate" and not self._background
                    and freshness.within_swr(decision, entry.headers,
                                             default=cache.settings.stale_while_revalidate)):
                # RFC 5861: serve it now and revalidate in the background, once per key.
                cache.metrics["stale_served"] += 1
                self._serve_entry(entry, decision.age, cache_status(
                    hit=True, ttl=decision.ttl, detail="stale-while-revalidate"))
                if cache.begin_refresh(state.key):
                    background_revalidation(self.rt, self.head, state.key)
                return
            state.entry = entry
            state.revalidating = True
            state.fwd = "request" if decision.by_request else "stale"
            self._dispatch()
            return
        if self._cache_only_if_cached():
            self._reply(504, "only-if-cached and nothing stored")
            return
        cache.metrics["misses"] += 1
        state.fwd = found.fwd
        if not self._background and _has_range(self.head.headers):
            # A ranged miss goes to the origin as is (the client never waits for a whole
            # video); the whole object is fetched for the cache in the background.
            if cache.begin_refresh(state.key):
                background_revalidation(self.rt, _without_range(self.head), state.key)
            self._dispatch()
            return
        waiter = cache.join_fill(state.key)
        if waiter is not None:
            waiter.addCallbacks(self._cache_fill_ended, self._cache_fill_timeout)
            return
        cache.start_fill(state.key)
        state.filling = True
        self._dispatch()

    def _cache_only_if_cached(self):
        return any(name == b"cache-control" and b"only-if-cached" in value.lower()
                   for name, value in self.head.headers)

    def _cache_fill_ended(self, _):
        """The fetch we waited for ended: look again (a hit now, or our turn to fetch)."""
        self._cache.collapsed = True
        if not self._done:
            self._cache_lookup()

    def _cache_fill_timeout(self, failure):
        if not self._done:
            log.info("rid={rid} waited lock_timeout for another fetch; going to the origin",
                     rid=self._rid)
            self._dispatch()

    def _cache_request_headers(self, headers):
        """While revalidating, the conditional headers are ours (RFC 9111 §4.3.1)."""
        state = self._cache
        if state is None or not state.revalidating:
            return headers
        headers = [h for h in headers if h[0] not in _CONDITIONALS]
        return headers + validation.revalidation_headers(state.entry.headers)

    # -- the origin answers --------------------------------------------------------------------
    def _cache_head(self, head):
        """Called with the response head; True when the cache tier answered instead."""
        state = self._cache
        state.request_time = self.upstream_started or self.rt.clock.seconds()
        if state.revalidating:
            if head.status == 304:
                fresh = self.rt.cache.updated(state.entry, head.headers, state.request_time,
                                              self.rt.clock.seconds())
                state.entry = fresh
                state.status_header = cache_status(fwd=state.fwd, fwd_status=304)
                return True  # served at upstream_end, when the exchange is over
            if head.status >= 500 and freshness.within_sie(
                    state.decision, state.entry.headers, self.head.headers,
                    default=self.rt.cache.settings.stale_if_error):
                self.rt.cache.metrics["stale_served"] += 1
                entry = state.entry
                state.revalidating = False
                self._abandon_upstream()
                self._serve_entry(entry, state.decision.age, cache_status(
                    fwd=state.fwd, fwd_status=head.status, detail="stale-if-error"))
                return True
        ok, why = self.rt.cache.may_store(self.head.method, head.status, self.head.headers,
                                          head.headers, self.route.cache_ttl)
        length = head.content_length
        state.store = ok and (length is None or length <= self.rt.cache.settings.max_object)
        if state.store:
            state.tee = []
        state.status_header = cache_status(fwd=state.fwd or "miss", fwd_status=head.status,
                                           stored=state.store)
        return False

    def _cache_data(self, data):
        state = self._cache
        state.tee_size += len(data)
        if state.tee_size > self.rt.cache.settings.max_object:
            state.tee = None
            state.store = False
        else:
            state.tee.append(data)

    def _cache_end(self, head):
        """The exchange completed; True when the cache tier answers (a 304 revalidation)."""
        state = self._cache
        if state.revalidating and state.entry is not None and state.status_header is not None \
                and not self.writer.started:
            self._serve_entry(state.entry, 0.0, state.status_header)
            return True
        if state.store and state.tee is not None:
            self.rt.cache.put_response(
                state.key, self.head.headers, head.status, head.reason,
                self.rt.cache_headers(head.headers), b"".join(state.tee), state.request_time,
                self.rt.clock.seconds(), self.route.cache_ttl)
            state.tee = None
        return False

    def _cache_finished(self):
        """The request is over: release requests waiting for this fetch."""
        state = self._cache
        if state is not None and state.filling:
            state.filling = False
            self.rt.cache.end_fill(state.key)
        if state is not None and self._background:
            self.rt.cache.end_refresh(state.key)

    def _cache_failed(self, error):
        """The origin failed or no member could take the request; True when a stale
        response was served instead (RFC 5861 stale-if-error)."""
        state = self._cache
        if state is None or not state.revalidating or self._done:
            return False
        if not freshness.within_sie(state.decision, state.entry.headers, self.head.headers,
                                    default=self.rt.cache.settings.stale_if_error):
            return False
        self.rt.cache.metrics["stale_served"] += 1
        state.revalidating = False
        self._serve_entry(state.entry, state.decision.age, cache_status(
            fwd=state.fwd, detail="stale-if-error"))
        return True

    def _cache_invalidate(self, head):
        """An unsafe method succeeded: drop the URI and same-origin Location/Content-Location."""
        uri = effective_uri(b"http", self.head.host, self._path, self._query)
        targets = validation.invalidation_targets(self.head.method, head.status, uri, head.headers)
        if targets:
            self.rt.cache.invalidate(targets)

    # -- answering from the cache ------------------------------------------------------------
    def _serve_entry(self, entry, age, status_header):
        """Answer from a stored response: Age, Cache-Status, client conditionals, HEAD."""
        headers = self.rt.cache.served_headers(entry, self.rt.via_field) + [
            (b"age", b"%d" % max(0, int(age))), (b"cache-status", status_header)]
        conditional = None
        if any(h[0] in _CONDITIONALS for h in self.head.headers):
            conditional = validation.client_conditional(self.head.headers, entry.headers,
                                                        self.head.method)
        writer = self.writer
        if conditional is not None:
            kept = [h for h in headers if h[0] not in (b"content-length", b"content-type",
                                                        b"content-encoding", b"content-range")]
            writer.start(conditional, b"Not Modified" if conditional == 304
                         else b"Precondition Failed", kept, 0 if conditional == 412 else None)
            writer.finish()
            return
        ranged = None
        if _has_range(self.head.headers):
            ranged = ranges.range_response(entry.status, headers, entry.body, self.head.headers,
                                           self.head.method)
        if ranged is not None:
            status, headers, body = ranged
            writer.start(status, b"Partial Content" if status == 206
                         else b"Range Not Satisfiable", headers, len(body))
            writer.write(body)
            writer.finish()
            return
        self._start_full(entry, headers, int(age), status_header)
        writer.write(entry.body)
        writer.finish()

    def _start_full(self, entry, headers, age, status_header):
        """Start a full 200-style answer from ``entry``; the serialised head is remembered for
        the hits that follow within the same second (same Age, same Cache-Status)."""
        writer, head = self.writer, self.head
        if self.rt.stats.shutting_down or entry.status in (204, 304) or entry.status < 200:
            writer.start(entry.status, entry.reason, headers, len(entry.body))
            return
        key = (id(entry), age, status_header, head.method, head.version, writer.keep_alive)
        known = _HEADS.get(key)
        if known is not None and known[0] is entry:
            writer.start_prepared(entry.status, known[1], len(entry.body))
            return
        writer.start(entry.status, entry.reason, headers, len(entry.body))
        if writer.pending_head is not None:
            if len(_HEADS) >= 4096:
                _HEADS.clear()
            _HEADS[key] = (entry, writer.pending_head)
