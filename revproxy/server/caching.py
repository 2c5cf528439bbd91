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
from revproxy.cache.bodies import FILL_BACKLOG, BodyFill
from revproxy.cache.directives import first_field
from revproxy.cache.parts import Parts, parse_content_range, part_response
from revproxy.cache.status import cache_status
from revproxy.server.sinks import DiscardSink
from revproxy.server.streaming import BodyStreamer

log = Logger(namespace="revproxy.cache")

_CACHED_METHODS = frozenset([b"GET", b"HEAD"])
_CONDITIONALS = frozenset([b"if-none-match", b"if-modified-since", b"if-match",
                           b"if-unmodified-since", b"if-range"])


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
        if entry is not None and entry.status == 206:
            # an incomplete response: it answers only a range wholly within one stored part
            if not owner.background and self._serve_part(entry, now):
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
        self.serve_entry(entry, decision.age, cache_status(
            hit=True, ttl=decision.ttl, collapsed=True, detail="filling"))
        return True

    def _serve_part(self, entry, now):
        """Answer a single-range GET from a stored part; False when it cannot."""
        cache, head = self.cache, self.head
        decision = cache.decide(entry, head.headers, now)
        if not decision.usable or head.method != b"GET":
            return False
        answer = part_response(entry, head.headers)
        if answer is None:
            return False
        status, content_range, body = answer
        cache.metrics["hits"] += 1
        self.state.served = cache_status(hit=True, ttl=decision.ttl, detail="partial")
        headers = cache.served_headers(entry, self.rt.via_field) + content_range + [
            (b"age", b"%d" % max(0, int(decision.age))), (b"cache-status", self.state.served)]
        self.sink.start(status, b"Partial Content", headers, len(body))
        self.sink.write(body)
        self.sink.finish()
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
        headers = [h for h in headers if h[0] not in _CONDITIONALS]
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
        if head.status == 206 and self.head.method == b"GET":
            ok, why = cache.may_store_part(self.head.headers, head.headers,
                                           route.cache_set_cookie)
            state.part = ok
        else:
            ok, why = cache.may_store(self.head.method, head.status, self.head.headers,
                                      head.headers, route.cache_ttl, route.cache_set_cookie)
        length = head.content_length
        state.store = ok and (length is None or length <= cache.settings.max_object)
        if ok and length is not None and length > cache.settings.max_object:
            state.store = self._begin_fill(head, length)
        elif state.store:
            state.tee = []
        if head.status == 206 and not self.owner.background and _has_range(self.head.headers):
            self._fill_ranges(head)
        state.status_header = cache_status(fwd=state.fwd or "miss", fwd_status=head.status,
                                           stored=state.store)
        return False

    def on_data(self, data):
        state = self.state
        if state.fill is not None:
            self._fill_write(data)
            return
        if state.tee is None:
            return
        state.tee_size += len(data)
        if state.tee_size <= self.cache.settings.max_object:
            state.tee.append(data)
            return
        tee, state.tee = state.tee, None
        # larger than memory takes: on to a file, if the store keeps bodies in files
        state.store = self._begin_fill(state.head, None)
        if state.store:
            self._fill_write(b"".join(tee))
            self._fill_write(data)

    # -- large bodies: written to the store's file as they arrive --------------------------
    def _begin_fill(self, head, expected):
        """Start writing this 200's body to a file of the store (True), or not (False: not
        a streaming store, too large for it, not a plain GET 200)."""
        state, route = self.state, self.ctx.route
        if head.status != 200 or self.head.method != b"GET" or state.part:
            return False
        fill = self.cache.begin_stream(
            state.key, self.head.headers, head.status, head.reason,
            self.rt.cache_headers(head.headers), state.request_time, route.cache_ttl,
            route.cache_set_cookie, expected)
        state.fill = fill
        return fill is not None

    def _fill_write(self, data):
        state, cache = self.state, self.cache
        fill = state.fill
        if fill.queued + len(data) > cache.store.max_object:
            self._drop_fill()
            return
        fill.write(data)
        upstream = self.owner.exchange.upstream if self.owner.exchange is not None else None
        if fill.backlog > FILL_BACKLOG and upstream is not None and fill.on_drained is None:
            # the disk is slower than the origin: hold the origin, not the bytes
            upstream.pauseProducing()
            fill.on_drained = upstream.resumeProducing

    def _drop_fill(self):
        state = self.state
        fill, state.fill = state.fill, None
        state.store = False
        if fill is not None:
            fill.fail()
            self.cache.end_stream(state.key, fill)

    def _fill_ranges(self, head):
        """A ranged miss was answered 206: fetch what the cache lacks in the background,
        once per key, never what it has or is getting now: the whole object when its length
        is within ``range_fill_max``, and while parts are stored, the first range missing
        besides this one (a single range, stored as a part)."""
        state, cache = self.state, self.cache
        content_range = parse_content_range(first_field(head.headers, b"content-range"))
        if content_range is None:
            return
        first, last, length = content_range
        if length > cache.settings.range_fill_max:
            return
        gaps = [(0, length - 1)]
        stored = state.stored_part
        if stored is not None:
            try:
                gaps = Parts.unpack(stored.body).missing()
            except ValueError:
                pass
        gaps = missing_besides(gaps, first, last)
        if not gaps:
            return
        if state.part:  # parts are kept: ask only for bytes the cache lacks
            wanted = _with_range(self.head, gaps[0])
        else:  # they are not (no strong ETag...): the whole 200
            wanted = _without_range(self.head)
        if cache.begin_refresh(state.key):
            background_revalidation(self.rt, self.ctx, wanted, state.key)

    def on_end(self):
        """The exchange completed; True when the cache stage answers (a 304 revalidation)."""
        state = self.state
        head = state.head
        if state.revalidating and state.entry is not None and state.status_header is not None \
                and not self.sink.started:
            self.serve_entry(state.entry, 0.0, state.status_header, validated=True)
            return True
        if state.fill is not None:
            self._end_fill()
        elif state.store and state.tee is not None and state.part:
            self.cache.put_part(
                state.key, self.head.headers, self.rt.cache_headers(head.headers),
                b"".join(state.tee), state.request_time, self.rt.clock.seconds(),
                self.ctx.route.cache_set_cookie)
            state.tee = None
        elif state.store and state.tee is not None:
            self.cache.put_response(
                state.key, self.head.headers, head.status, head.reason,
                self.rt.cache_headers(head.headers), b"".join(state.tee), state.request_time,
                self.rt.clock.seconds(), self.ctx.route.cache_ttl,
                self.ctx.route.cache_set_cookie)
            state.tee = None
        return False

    def _end_fill(self):
        """The body is complete: store the entry once every byte is on disk."""
        state, cache, head = self.state, self.cache, self.state.head
        fill, state.fill = state.fill, None
        route = self.ctx.route

        def store(body):
            return cache.put_response(
                state.key, self.head.headers, head.status, head.reason,
                self.rt.cache_headers(head.headers), body, state.request_time,
                self.rt.clock.seconds(), route.cache_ttl, route.cache_set_cookie)

        d = fill.end()
        d.addCallback(store)
        d.addErrback(lambda f: log.warn("cache fill of {key!r} not stored: {error}",
                                        key=state.key, error=f.value))
        d.addBoth(lambda _: cache.end_stream(state.key, fill))

    def finished(self):
        """The request is over: release requests waiting for this fetch."""
        state = self.state
        if state is None:
            return
        if state.fill is not None:  # ended without its body: readers behind it abort
            self._drop_fill()
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
        if self.state is not None:
            self.state.served = status_header
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
        body = entry.body
        in_file = not isinstance(body, bytes)
        length = _full_length(body)  # None: a fill of a length still unknown
        ranged = None
        if _has_range(head.headers) and in_file and length is not None:
            plan = ranges.range_plan(entry.status, headers, length, head.headers,
                                     head.method)
            if plan is not None and plan[1] is not None:  # one range, or none satisfiable
                status, headers, spans = plan
                first, last = spans[0] if spans else (0, -1)
                sink.start(status, b"Partial Content" if status == 206
                           else b"Range Not Satisfiable", headers, last - first + 1)
                self._stream(body, first, last + 1)
                return
            # several ranges of a body in a file: the 200 (RFC 9110 §14.2 allows it)
        elif _has_range(head.headers):
            ranged = ranges.range_response(entry.status, headers, body, head.headers,
                                           head.method)
        if ranged is not None:
            status, headers, body = ranged
            sink.start(status, b"Partial Content" if status == 206
                       else b"Range Not Satisfiable", headers, len(body))
            sink.write(body)
            sink.finish()
            return
        if isinstance(body, BodyFill):  # still filling: no remembered head
            sink.start(entry.status, entry.reason, headers, length)
            self._stream(body, 0, length)
            return
        self._start_full(entry, headers, int(age), status_header)
        if in_file:
            self._stream(body, 0, len(body))
            return
        sink.write(body)
        sink.finish()

    def _stream(self, source, start, end):
        """Send bytes [start, end) of a body kept in a file, chunk by chunk, never whole."""
        if self.head.method == b"HEAD" or (end is not None and end <= start):
            self.sink.finish()
            return
        BodyStreamer(self.sink, source, start, end).start()

    def _start_full(self, entry, headers, age, status_header):
        """Start a full 200-style answer from ``entry``; the serialised head is remembered (on
        the entry) for the hits that follow within the same second (same Age, same
        Cache-Status)."""
        sink, head = self.sink, self.head
        if self.rt.stats.shutting_down or entry.status in (204, 304) or entry.status < 200 \
                or self.owner.routing is not None:  # per-request header values: never memoised
            sink.start(entry.status, entry.reason, headers, len(entry.body))
            return
        memo = self.cache.memo(entry)
        heads = memo.heads
        key = (age, status_header, head.method, head.version, sink.keep_alive)
        if heads is not None:
            known = heads.get(key)
            if known is not None:
                sink.start_prepared(entry.status, known, len(entry.body))
                return
        sink.start(entry.status, entry.reason, headers, len(entry.body))
        if sink.pending_head is not None:
            if heads is None or len(heads) >= memo.MAX_HEADS:
                heads = memo.heads = {}
            heads[key] = sink.pending_head


def _full_length(body):
    """The whole length of a body (bytes or in a file), or None while a fill of unknown
    length is open."""
    if isinstance(body, BodyFill):
        return body.length if body.length is not None else body.expected
    return len(body)


def _with_range(head, span):
    """A copy of a request head asking for the single range ``span`` (first, last)."""
    headers = [h for h in head.headers if h[0] not in (b"range", b"if-range")]
    return head.replace(headers=headers + [(b"range", b"bytes=%d-%d" % span)])


def missing_besides(gaps, first, last):
    """The inclusive ranges of ``gaps`` (sorted, disjoint) without ``first..last``."""
    out = []
    for a, b in gaps:
        if b < first or a > last:
            out.append((a, b))
            continue
        if a < first:
            out.append((a, first - 1))
        if b > last:
            out.append((last + 1, b))
    return out


def invalidate_after(rt, ctx, response_head):
    """An unsafe method succeeded: drop the URI and same-origin Location/Content-Location
    (RFC 9111 §4.4)."""
    uri = effective_uri(ctx.peer.scheme.encode("ascii"), ctx.head.host, ctx.path, ctx.query)
    targets = validation.invalidation_targets(ctx.head.method, response_head.status, uri,
                                              response_head.headers)
    if targets:
        rt.cache.invalidate(targets)
