"""The cache stage of a request: hits, revalidation, collapsing, filling, invalidation.

``CacheStage`` is built by the ``ProxyRequest`` for a cacheable request and answers from the
store through the request's response sink, or sends the request on (``owner.forward()``) and
watches the origin's answer (``on_head`` / ``on_data`` / ``on_end`` / ``on_failed``) to store
it, refresh an entry or serve a stale one. Every response that passes through the cache stage
carries a ``Cache-Status`` (RFC 9211). A background revalidation is a ``ProxyRequest`` whose
sink is a ``DiscardSink``: no client connection is faked.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.cache import freshness, ranges, validation
from revproxy.cache.engine import Found
from revproxy.cache.keys import effective_uri, primary_key
from revproxy.cache.status import cache_status
from revproxy.server.sinks import DiscardSink

log = Logger(namespace="revproxy.cache")

_CACHED_METHODS = frozenset([b"GET", b"HEAD"])
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


def background_revalidation(runtime, ctx, head, key):
    """Revalidate ``key`` with ``head`` (a request head no client waits for)."""
    sink = DiscardSink()
    request = runtime.new_request(ctx.peer, head, sink)
    request.background = True
    sink.request = request
    request.begin()
    if not request.done:
        request.body_end()


class CacheStage:
    """The cache tier's part of one GET/HEAD request on a caching route."""

    __slots__ = ("owner", "rt", "cache", "ctx", "head", "sink", "state")

    def __init__(self, owner):
        self.owner = owner
        self.rt = owner.rt
        self.cache = owner.rt.cache
        self.ctx = owner.ctx
        self.head = owner.ctx.head
        self.sink = owner.sink
        self.state = None

    @staticmethod
    def applies(rt, route, method):
        return rt.cache is not None and route.cache and method in _CACHED_METHODS

    @property
    def _rid(self):
        return self.ctx.request_id.decode("ascii", "replace")

    # -- before the origin -------------------------------------------------------------------
    def begin(self):
        ctx = self.ctx
        key = primary_key(ctx.peer.scheme.encode("ascii"), self.head.host, ctx.path, ctx.query,
                          self.rt.cache_key_settings(ctx.route), self.head.headers)
        self.state = CacheState(key)
        self._lookup()

    def _lookup(self):
        found = self.cache.lookup(self.state.key, self.head.headers)
        if isinstance(found, Found):
            self._found(found)
            return
        found.addCallback(self._found)
        found.addErrback(self._broken)

    def _broken(self, failure):
        log.failure("rid={rid} cache lookup failed; going to the origin", failure, rid=self._rid)
        if not self.owner.done:
            self.state.fwd = "miss"
            self.owner.forward()

    def _found(self, found):
        owner = self.owner
        if owner.done:
            return
        cache, state = self.cache, self.state
        now = self.rt.clock.seconds()
        entry = found.entry
        if entry is not None:
            decision = cache.decide(entry, self.head.headers, now)
            state.decision = decision
            if decision.usable:
                cache.metrics["hits"] += 1
                self.serve_entry(entry, decision.age, _hit_status(decision.ttl, state.collapsed))
                return
            if decision.kind == "bypass":
                state.fwd = "request"
                owner.forward()
                return
            if decision.only_if_cached:
                owner.reply(504, "only-if-cached and the stored response is stale")
                return
            if (decision.kind == "revalidate" and not owner.background
                    and freshness.within_swr(decision, cache.policy(entry.headers),
                                             default=cache.settings.stale_while_revalidate)):
                # RFC 5861: serve it now and revalidate in the background, once per key.
                cache.metrics["stale_served"] += 1
                self.serve_entry(entry, decision.age, cache_status(
                    hit=True, ttl=decision.ttl, detail="stale-while-revalidate"))
                if cache.begin_refresh(state.key):
                    background_revalidation(self.rt, self.ctx, self.head, state.key)
                return
            state.entry = entry
            state.revalidating = True
            state.fwd = "request" if decision.by_request else "stale"
            owner.forward()
            return
        if self._only_if_cached():
            owner.reply(504, "only-if-cached and nothing stored")
            return
        cache.metrics["misses"] += 1
        state.fwd = found.fwd
        if not owner.background and _has_range(self.head.headers):
            # A ranged miss goes to the origin as is (the client never waits for a whole
            # video); the whole object is fetched for the cache in the background.
            if cache.begin_refresh(state.key):
                background_revalidation(self.rt, self.ctx, _without_range(self.head), state.key)
            owner.forward()
            return
        waiter = cache.join_fill(state.key)
        if waiter is not None:
            waiter.addCallbacks(self._fill_ended, self._fill_timeout)
            return
        cache.start_fill(state.key)
        state.filling = True
        owner.forward()

    def _only_if_cached(self):
        return any(name == b"cache-control" and b"only-if-cached" in value.lower()
                   for name, value in self.head.headers)

    def _fill_ended(self, _):
        """The fetch we waited for ended: look again (a hit now, or our turn to fetch)."""
        self.state.collapsed = True
        if not self.owner.done:
            self._lookup()

    def _fill_timeout(self, failure):
        if not self.owner.done:
            log.info("rid={rid} waited lock_timeout for another fetch; going to the origin",
                     rid=self._rid)
            self.owner.forward()

    def request_headers(self, headers):
        """While revalidating, the conditional headers are ours (RFC 9111 §4.3.1)."""
        state = self.state
        if state is None or not state.revalidating:
            return headers
        headers = [h for h in headers if h[0] not in _CONDITIONALS]
        return headers + validation.revalidation_headers(state.entry.headers)

    @property
    def status_header(self):
        return self.state.status_header if self.state is not None else None

    # -- the origin answers --------------------------------------------------------------------
    def on_head(self, head, upstream_started):
        """The origin's final response head; True when the cache stage answered instead."""
        state = self.state
        state.head = head
        state.request_time = upstream_started or self.rt.clock.seconds()
        cache = self.cache
        if state.revalidating:
            if head.status == 304:
                state.entry = cache.updated(state.entry, head.headers, state.request_time,
                                            self.rt.clock.seconds())
                state.status_header = cache_status(fwd=state.fwd, fwd_status=304)
                return True  # served at on_end, when the exchange is over
            if head.status >= 500 and freshness.within_sie(
                    state.decision, cache.policy(state.entry.headers), self.head.headers,
                    default=cache.settings.stale_if_error):
                cache.metrics["stale_served"] += 1
                entry = state.entry
                state.revalidating = False
                self.owner.abandon_upstream()
                self.serve_entry(entry, state.decision.age, cache_status(
                    fwd=state.fwd, fwd_status=head.status, detail="stale-if-error"))
                return True
        route = self.ctx.route
        ok, why = cache.may_store(self.head.method, head.status, self.head.headers,
                                  head.headers, route.cache_ttl, route.cache_set_cookie)
        length = head.content_length
        state.store = ok and (length is None or length <= cache.settings.max_object)
        if state.store:
            state.tee = []
        state.status_header = cache_status(fwd=state.fwd or "miss", fwd_status=head.status,
                                           stored=state.store)
        return False

    def on_data(self, data):
        state = self.state
        if state.tee is None:
            return
        state.tee_size += len(data)
        if state.tee_size > self.cache.settings.max_object:
            state.tee = None
            state.store = False
        else:
            state.tee.append(data)

    def on_end(self):
        """The exchange completed; True when the cache stage answers (a 304 revalidation)."""
        state = self.state
        head = state.head
        if state.revalidating and state.entry is not None and state.status_header is not None \
                and not self.sink.started:
            self.serve_entry(state.entry, 0.0, state.status_header, validated=True)
            return True
        if state.store and state.tee is not None:
            self.cache.put_response(
                state.key, self.head.headers, head.status, head.reason,
                self.rt.cache_headers(head.headers), b"".join(state.tee), state.request_time,
                self.rt.clock.seconds(), self.ctx.route.cache_ttl,
                self.ctx.route.cache_set_cookie)
            state.tee = None
        return False

    def finished(self):
        """The request is over: release requests waiting for this fetch."""
        state = self.state
        if state is None:
            return
        if state.filling:
            state.filling = False
            self.cache.end_fill(state.key)
        if self.owner.background:
            self.cache.end_refresh(state.key)

    def on_failed(self):
        """The origin failed or no member could take the request; True when a stale
        response was served instead (RFC 5861 stale-if-error)."""
        state = self.state
        if state is None or not state.revalidating or self.owner.done:
            return False
        if not freshness.within_sie(state.decision, self.cache.policy(state.entry.headers),
                                    self.head.headers,
                                    default=self.cache.settings.stale_if_error):
            return False
        self.cache.metrics["stale_served"] += 1
        state.revalidating = False
        self.serve_entry(state.entry, state.decision.age, cache_status(
            fwd=state.fwd, detail="stale-if-error"))
        return True

    # -- answering from the cache ------------------------------------------------------------
    def serve_entry(self, entry, age, status_header, validated=False):
        """Answer from a stored response: Age, Cache-Status, client conditionals, HEAD;
        ``validated`` when this request just revalidated it (a 304 from the origin)."""
        head = self.head
        headers = self.cache.served_headers(entry, self.rt.via_field, validated) + [
            (b"age", b"%d" % max(0, int(age))), (b"cache-status", status_header)]
        routing = self.owner.routing
        if routing is not None:  # the route's response headers apply to hits too
            headers = routing.response_headers(headers)
        conditional = None
        if any(h[0] in _CONDITIONALS for h in head.headers):
            conditional = validation.client_conditional(head.headers, entry.headers, head.method)
        sink = self.sink
        if conditional is not None:
            kept = [h for h in headers if h[0] not in (b"content-length", b"content-type",
                                                        b"content-encoding", b"content-range")]
            sink.start(conditional, b"Not Modified" if conditional == 304
                       else b"Precondition Failed", kept, 0 if conditional == 412 else None)
            sink.finish()
            return
        ranged = None
        if _has_range(head.headers):
            ranged = ranges.range_response(entry.status, headers, entry.body, head.headers,
                                           head.method)
        if ranged is not None:
            status, headers, body = ranged
            sink.start(status, b"Partial Content" if status == 206
                       else b"Range Not Satisfiable", headers, len(body))
            sink.write(body)
            sink.finish()
            return
        self._start_full(entry, headers, int(age), status_header)
        sink.write(entry.body)
        sink.finish()

    def _start_full(self, entry, headers, age, status_header):
        """Start a full 200-style answer from ``entry``; the serialised head is remembered for
        the hits that follow within the same second (same Age, same Cache-Status)."""
        sink, head = self.sink, self.head
        if self.rt.stats.shutting_down or entry.status in (204, 304) or entry.status < 200 \
                or self.owner.routing is not None:  # per-request header values: never memoised
            sink.start(entry.status, entry.reason, headers, len(entry.body))
            return
        key = (id(entry), age, status_header, head.method, head.version, sink.keep_alive)
        known = _HEADS.get(key)
        if known is not None and known[0] is entry:
            sink.start_prepared(entry.status, known[1], len(entry.body))
            return
        sink.start(entry.status, entry.reason, headers, len(entry.body))
        if sink.pending_head is not None:
            if len(_HEADS) >= 4096:
                _HEADS.clear()
            _HEADS[key] = (entry, sink.pending_head)


def invalidate_after(rt, ctx, response_head):
    """An unsafe method succeeded: drop the URI and same-origin Location/Content-Location
    (RFC 9111 §4.4)."""
    uri = effective_uri(ctx.peer.scheme.encode("ascii"), ctx.head.host, ctx.path, ctx.query)
    targets = validation.invalidation_targets(ctx.head.method, response_head.status, uri,
                                              response_head.headers)
    if targets:
        rt.cache.invalidate(targets)
