"""The cache stage of a request: hits, revalidation, collapsing, filling, invalidation.

``CacheStage`` is built by the ``ProxyRequest`` for a cacheable request and answers from the
store through the request's response sink, or sends the request on (``owner.forward()``) and
watches the origin's answer (``on_head`` / ``on_data`` / ``on_end`` / ``on_failed``) to store
it, refresh an entry or serve a stale one. Every response that passes through the cache stage
carries a ``Cache-Status`` (RFC 9211). A background revalidation is a ``ProxyRequest`` whose
sink is a ``DiscardSink``: no client connection is faked. This module holds the stage's
decisions; how it answers from a stored response is ``server/cacheserve.py``, how it fills
the cache from the origin's answer ``server/cachefill.py``.
"""

from __future__ import annotations

from twisted.logger import Logger

from revproxy.cache import freshness, storing, validation
from revproxy.cache.engine import Found
from revproxy.cache.keys import effective_uri, primary_key
from revproxy.cache.rangefill import range_fill_head
from revproxy.cache.ranges import has_range
from revproxy.cache.status import cache_status
from revproxy.cache.validation import CONDITIONAL_FIELDS
from revproxy.server.cachefill import (begin_body_fill, drop_body_fill, end_body_fill,
                                       store_teed, write_body_fill)
from revproxy.server.cacheserve import serve_entry, serve_part
from revproxy.server.sinks import DiscardSink

log = Logger(namespace="revproxy.cache")

_CACHED_METHODS = frozenset([b"GET", b"HEAD"])


class CacheState:
    """What the cache tier knows about one request."""

    __slots__ = ("key", "entry", "fwd", "filling", "tee", "tee_size", "store", "revalidating",
                 "request_time", "status_header", "decision", "head", "collapsed", "part",
                 "fill", "stored_part", "served")

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
        self.part = False  # the response is a 206 stored as a part (RFC 9111 §3.3)
        self.fill = None  # the BodyFill a large body is written to as it arrives
        self.stored_part = None  # the 206 entry found, which could not answer this request
        self.served = None  # the Cache-Status of an answer from the cache (for the log)


_HIT_STATUS = {}  # (ttl in whole seconds, collapsed) -> Cache-Status value


def _hit_status(ttl, collapsed):
    key = (int(ttl // 1), collapsed)
    value = _HIT_STATUS.get(key)
    if value is None:
        if len(_HIT_STATUS) >= 4096:
            _HIT_STATUS.clear()
        value = _HIT_STATUS[key] = cache_status(hit=True, ttl=ttl, collapsed=collapsed)
    return value


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
        if entry is not None and entry.status == 206:
            # an incomplete response: it answers only a range wholly within one stored part
            if not owner.background and serve_part(self, entry, now):
                return
            state.stored_part = entry
            entry = None
        if entry is None and not owner.background and self._read_along(now):
            return
        if entry is not None:
            decision = cache.decide(entry, self.head.headers, now)
            state.decision = decision
            if decision.usable:
                cache.metrics["hits"] += 1
                serve_entry(self, entry, decision.age, _hit_status(decision.ttl, state.collapsed))
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
                serve_entry(self, entry, decision.age, cache_status(
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
        if not owner.background and has_range(self.head.headers):
            # A ranged miss goes to the origin as is (the client never waits for a whole
            # video); what else to fetch for the cache is decided at its answer (on_head).
            owner.forward()
            return
        waiter = cache.join_fill(state.key)
        if waiter is not None:
            waiter.addCallbacks(self._fill_ended, self._fill_timeout)
            return
        cache.start_fill(state.key)
        state.filling = True
        owner.forward()

    def _read_along(self, now):
        """Answer from the entry being filled for this key, reading behind the writer
        (Varnish-style streaming: no second origin fetch, no wait for the whole body);
        False when there is none or it is not usable for this request."""
        cache = self.cache
        entry = cache.filling(self.state.key)
        if entry is None:
            return False
        decision = cache.decide(entry, self.head.headers, now)
        if not decision.usable:
            return False
        self.state.decision = decision
        cache.metrics["hits"] += 1
        serve_entry(self, entry, decision.age, cache_status(
            hit=True, ttl=decision.ttl, collapsed=True, detail="filling"))
        return True

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
        headers = [h for h in headers if h[0] not in CONDITIONAL_FIELDS]
        return headers + validation.revalidation_headers(state.entry.headers)

    @property
    def status_header(self):
        return self.state.status_header if self.state is not None else None

    @property
    def logged_status(self):
        """The Cache-Status this request's answer carried (for the access log), or None."""
        state = self.state
        if state is None:
            return None
        return state.served if state.served is not None else state.status_header

    # -- the origin answers --------------------------------------------------------------------
    def on_head(self, head, upstream_started):
        """The origin's final response head; True when the cache stage answered instead."""
        state = self.state
        state.head = head
        state.request_time = upstream_started or self.rt.clock.seconds()
        cache = self.cache
        if state.revalidating:
            if head.status == 304:
                state.entry = storing.updated(cache, state.entry, head.headers,
                                              state.request_time, self.rt.clock.seconds())
                state.status_header = cache_status(fwd=state.fwd, fwd_status=304)
                return True  # served at on_end, when the exchange is over
            if head.status >= 500 and freshness.within_sie(
                    state.decision, cache.policy(state.entry.headers), self.head.headers,
                    default=cache.settings.stale_if_error):
                cache.metrics["stale_served"] += 1
                entry = state.entry
                state.revalidating = False
                self.owner.abandon_upstream()
                serve_entry(self, entry, state.decision.age, cache_status(
                    fwd=state.fwd, fwd_status=head.status, detail="stale-if-error"))
                return True
        route = self.ctx.route
        if head.status == 206 and self.head.method == b"GET":
            ok, why = storing.may_store_part(cache, self.head.headers, head.headers,
                                             route.cache_set_cookie)
            state.part = ok
        else:
            ok, why = storing.may_store(cache, self.head.method, head.status,
                                        self.head.headers, head.headers, route.cache_ttl,
                                        route.cache_set_cookie)
        length = head.content_length
        state.store = ok and (length is None or length <= cache.settings.max_object)
        if ok and length is not None and length > cache.settings.max_object:
            state.store = begin_body_fill(self, head, length)
        elif state.store:
            state.tee = []
        if head.status == 206 and not self.owner.background and has_range(self.head.headers):
            self._fill_ranges(head)
        state.status_header = cache_status(fwd=state.fwd or "miss", fwd_status=head.status,
                                           stored=state.store)
        return False

    def on_data(self, data):
        state = self.state
        if state.fill is not None:
            write_body_fill(self, data)
            return
        if state.tee is None:
            return
        state.tee_size += len(data)
        if state.tee_size <= self.cache.settings.max_object:
            state.tee.append(data)
            return
        tee, state.tee = state.tee, None
        # larger than memory takes: on to a file, if the store keeps bodies in files
        state.store = begin_body_fill(self, state.head, None)
        if state.store:
            write_body_fill(self, b"".join(tee))
            write_body_fill(self, data)

    def _fill_ranges(self, head):
        """A ranged miss was answered 206: fetch what the cache lacks in the background,
        once per key (``rangefill.range_fill_head`` says what)."""
        state, cache = self.state, self.cache
        wanted = range_fill_head(self.head, head.headers, state.stored_part, state.part,
                                 cache.settings.range_fill_max)
        if wanted is not None and cache.begin_refresh(state.key):
            background_revalidation(self.rt, self.ctx, wanted, state.key)

    def on_end(self):
        """The exchange completed; True when the cache stage answers (a 304 revalidation)."""
        state = self.state
        if state.revalidating and state.entry is not None and state.status_header is not None \
                and not self.sink.started:
            serve_entry(self, state.entry, 0.0, state.status_header, validated=True)
            return True
        if state.fill is not None:
            end_body_fill(self)
        elif state.store and state.tee is not None:
            store_teed(self)
        return False

    def finished(self):
        """The request is over: release requests waiting for this fetch."""
        state = self.state
        if state is None:
            return
        if state.fill is not None:  # ended without its body: readers behind it abort
            drop_body_fill(self)
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
        serve_entry(self, state.entry, state.decision.age, cache_status(
            fwd=state.fwd, detail="stale-if-error"))
        return True


def invalidate_after(rt, ctx, response_head):
    """An unsafe method succeeded: drop the URI and same-origin Location/Content-Location
    (RFC 9111 §4.4)."""
    uri = effective_uri(ctx.peer.scheme.encode("ascii"), ctx.head.host, ctx.path, ctx.query)
    targets = validation.invalidation_targets(ctx.head.method, response_head.status, uri,
                                              response_head.headers)
    if targets:
        rt.cache.invalidate(targets)
