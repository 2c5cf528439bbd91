"""The shared cache as the request path sees it: look up, decide, collapse, purge, invalidate.

Policy lives in the pure modules (``freshness``, ``storability``, ``validation``, ``vary``);
bytes live in an ``ICacheStore``. This module holds the few stateful pieces between them:
lookups through the variant indexes for ``Vary``, what a hit derives from an entry (memoised
on it), request collapsing (concurrent misses for one key wait for the one fetch in flight,
up to ``lock_timeout``), bodies being filled and read along, and the metrics. Storing a
response is ``storing``'s job.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from revproxy.cache import freshness
from revproxy.cache.entry import CacheEntry, VariantIndex
from revproxy.cache.ranges import accept_ranges
from revproxy.cache.directives import unqualified
from revproxy.cache.storability import no_cache_fields
from revproxy.cache.storing import KEEP_STALE, prepare
from revproxy.cache.targeted import TargetedPolicy
from revproxy.cache.vary import variant_key
from revproxy.interfaces import IStreamingCacheStore

log = Logger(namespace="revproxy.cache")


class Found:
    """The result of a lookup: the entry (or None), its full key, and why it missed."""

    __slots__ = ("entry", "key", "fwd", "vary")

    def __init__(self, entry, key, fwd, vary):
        self.entry = entry
        self.key = key
        self.fwd = fwd  # None on a hit, else "uri-miss" / "vary-miss"
        self.vary = vary  # the VariantIndex found at the primary key, if any


_UNSET = object()


class EntryMemo:
    """What one engine derived from one ``CacheEntry`` object, kept on it (``entry.memo``):
    the freshness ``facts``, the ``served`` headers, and ``heads``, serialised response heads
    by request shape (at most ``MAX_HEADS``; the server's cache stage fills it)."""

    __slots__ = ("owner", "facts", "served", "heads")
    MAX_HEADS = 16

    def __init__(self, owner):
        self.owner = owner
        self.facts = _UNSET
        self.served = None
        self.heads = None


class HttpCache:
    """One cache over one store. ``store``, ``settings``, ``clock``, ``policy``,
    ``tag_headers`` and ``metrics`` are what ``storing``'s functions read of it."""

    def __init__(self, store, settings, clock):
        self.store = store
        self.settings = settings
        self.clock = clock
        self._fills = {}  # primary key -> [Deferred] of requests waiting for that fetch
        self._refreshing = set()  # keys with a background revalidation in flight
        self._streams = {}  # primary key -> entry whose body is being filled (read along)
        self.metrics = dict.fromkeys(
            ("hits", "misses", "stale_served", "revalidations", "collapsed", "stored",
             "bytes_stored", "not_stored", "invalidations"), 0)
        self.tag_headers = frozenset(name.encode("ascii") for name in settings.tag_headers)
        self.targets = TargetedPolicy(settings.targeted_fields, settings.strip_targeted_fields)
        # never relayed to a client: purge tags, and the targeted fields meant for us alone
        self.hidden_headers = self.tag_headers | self.targets.strip
        self.policy = self.targets.policy_headers  # headers -> the view the policy reads

    # -- looking up ----------------------------------------------------------------------------
    def lookup(self, primary: bytes, request_headers):
        """A ``Found`` at once when the store answered synchronously (the memory store
        does: no Deferred machinery per hit), else a Deferred of one."""
        d = self.store.get(primary)
        value = _now(d)
        if value is _PENDING:
            return d.addCallback(self._found_primary, primary, request_headers)
        if isinstance(value, VariantIndex):
            key = variant_key(primary, value.vary, request_headers)
            d = self.store.get(key)
            entry = _now(d)
            if entry is _PENDING:
                return d.addCallback(_variant_found, key, value)
            return _variant_found(entry, key, value)
        return self._found_primary(value, primary, request_headers)

    def _found_primary(self, value, primary, request_headers):
        if value is None:
            return Found(None, primary, "uri-miss", None)
        if isinstance(value, VariantIndex):
            key = variant_key(primary, value.vary, request_headers)
            d = self.store.get(key)
            d.addCallback(_variant_found, key, value)
            return d
        return Found(value, primary, None, None)

    def decide(self, entry, request_headers, now):
        """The ``freshness.Decision`` for serving ``entry`` to this request.

        Fast path for the common hit: a request with no cache directives of its own, an
        entry whose lifetime and initial age (§4.2.3: constant per stored response) are
        remembered, still fresh and not ``no-cache``: ``fresh`` without re-reading its
        headers. Anything else goes through ``freshness.evaluate``."""
        if not entry.stale and not _has_request_directives(request_headers):
            facts = self._entry_facts(entry)
            if facts is not None:
                lifetime, heuristic, initial_age = facts
                age = initial_age + max(0.0, now - entry.response_time)
                if age < lifetime:
                    return freshness.Decision("fresh", age, lifetime - age, lifetime,
                                              heuristic, False, False, "fresh")
        decision = freshness.evaluate(
            self.policy(entry.headers), entry.status, entry.request_time, entry.response_time,
            request_headers, now, heuristic_fraction=self.settings.heuristic_fraction,
            heuristic_max=self.settings.heuristic_max)
        if entry.stale and decision.usable:  # soft-purged: must revalidate first
            decision = decision._replace(kind="revalidate", reason="soft-purged")
        return decision

    def served_headers(self, entry, via_field, validated=False):
        """The stored headers as every hit sends them, without Age and Cache-Status (which
        change per request): ``Age`` dropped, our ``Via`` and ``Accept-Ranges`` added, the
        fields of a qualified ``no-cache="..."`` left out unless the entry was ``validated``
        by this very request (§5.2.2.4). Memoised on the entry, like the freshness facts."""
        memo = self.memo(entry)
        if memo.served is not None and not validated:
            return memo.served
        hidden = self.targets.strip
        if not validated:
            hidden = hidden | no_cache_fields(self.policy(entry.headers))
        headers = [h for h in entry.headers if h[0] != b"age" and h[0] not in hidden]
        headers.append(via_field)
        headers = accept_ranges(headers)
        if not validated:
            memo.served = headers
        return headers

    def memo(self, entry):
        """The ``EntryMemo`` this engine keeps on ``entry`` (made on first use). It lives and
        dies with the entry object: nothing here keeps an entry, or its body, alive."""
        memo = entry.memo
        if memo is None or memo.owner is not self:
            memo = entry.memo = EntryMemo(self)
        return memo

    def _entry_facts(self, entry):
        """(lifetime, heuristic, corrected initial age) of an entry, or None when it needs
        validation anyway (response no-cache); memoised on the entry."""
        memo = entry.memo
        if memo is not None and memo.owner is self and memo.facts is not _UNSET:
            return memo.facts
        headers = self.policy(entry.headers)
        cc = freshness.parse_cache_control(freshness.get_field(headers, b"cache-control"))
        if unqualified(cc, "no-cache"):
            facts = None
        else:
            lifetime, heuristic = freshness.freshness_lifetime(
                entry.status, headers, heuristic_fraction=self.settings.heuristic_fraction,
                heuristic_max=self.settings.heuristic_max, response_time=entry.response_time,
                cc=cc)
            initial_age = freshness.current_age(headers, entry.request_time,
                                                entry.response_time, entry.response_time)
            facts = (lifetime, heuristic, initial_age)
        self.memo(entry).facts = facts
        return facts

    # -- collapsing ----------------------------------------------------------------------------
    def join_fill(self, primary: bytes):
        """A Deferred firing when the fetch in flight for ``primary`` ends, or None when
        there is none (the caller then starts one with ``start_fill``)."""
        waiters = self._fills.get(primary)
        if waiters is None:
            return None
        d = defer.Deferred()
        waiters.append(d)
        self.metrics["collapsed"] += 1
        return d.addTimeout(self.settings.lock_timeout, self.clock)

    def start_fill(self, primary: bytes) -> None:
        self._fills.setdefault(primary, [])

    def end_fill(self, primary: bytes) -> None:
        for d in self._fills.pop(primary, ()):
            if not d.called:
                d.callback(None)

    def begin_refresh(self, key: bytes) -> bool:
        """Claim the background revalidation of ``key``; False when one is running."""
        if key in self._refreshing:
            return False
        self._refreshing.add(key)
        return True

    def end_refresh(self, key: bytes) -> None:
        self._refreshing.discard(key)

    # -- large bodies: filled into a file as they arrive, read along --------------------------
    @property
    def streams_bodies(self) -> bool:
        """The store keeps large bodies in files (``IStreamingCacheStore``)."""
        return IStreamingCacheStore.providedBy(self.store)

    def begin_stream(self, primary, request_headers, status, reason, headers, request_time,
                     route_ttl=None, set_cookie="refuse", expected=None):
        """A ``BodyFill`` the response's body is written to as it arrives (then stored with
        ``storing.put_response(..., body=fill.end()'s body)``), or None when the store takes
        none or the response is not to be kept. A response without ``Vary`` is readable at
        once by other requests for ``primary`` (``filling``) until ``end_stream``."""
        if not self.streams_bodies:
            return None
        now = self.clock.seconds()
        prepared = prepare(self, primary, request_headers, status, headers, now, route_ttl,
                           set_cookie)
        if prepared is None:
            return None
        fill = self.store.begin_body(expected)
        if fill is None:
            return None
        key, kept, keep, tags, names = prepared
        if not names:
            self._streams[primary] = CacheEntry(key, status, reason, kept, fill, request_time,
                                                now, now, tags)
        return fill

    def filling(self, primary):
        """The entry being filled for ``primary`` (its body a ``BodyFill``), or None."""
        entry = self._streams.get(primary)
        if entry is not None and entry.body.failed:
            del self._streams[primary]
            return None
        return entry

    def end_stream(self, primary, fill) -> None:
        entry = self._streams.get(primary)
        if entry is not None and entry.body is fill:
            del self._streams[primary]

    # -- purging -------------------------------------------------------------------------------
    def purge_url(self, key: bytes, soft: bool):
        """Purge what is stored under one primary key (with its variants): delete it, or,
        ``soft``, mark it stale so the next request revalidates. A Deferred of the count."""
        d = self.store.get(key)

        def found(value):
            if value is None:
                return 0
            keys = list(value.keys) if isinstance(value, VariantIndex) else []
            if not soft:
                self._drop(value, key)
                return max(1, len(keys))
            targets = keys or [key]
            ds = [self.store.get(k).addCallback(self._mark_stale) for k in targets]
            return defer.gatherResults(ds).addCallback(sum)

        return d.addCallback(found)

    def _mark_stale(self, entry):
        if not isinstance(entry, CacheEntry):
            return 0
        stale = entry.replace(stale=True)
        return self.store.put(entry.key, stale, KEEP_STALE, entry.tags).addCallback(
            lambda ok: 1 if ok else 0)

    # -- invalidating --------------------------------------------------------------------------
    def invalidate(self, uris):
        """Drop what is stored for each URI (with its variants): RFC 9111 §4.4."""
        for uri in uris:
            self.metrics["invalidations"] += 1
            d = self.store.get(uri)
            d.addCallback(self._drop, uri)
            d.addErrback(lambda f: log.failure("cache invalidation failed", f))

    def _drop(self, value, uri):
        if isinstance(value, VariantIndex):
            for key in value.keys:
                self.store.delete(key)
        if value is not None:
            return self.store.delete(uri)
        return None


class StoreSweeper:
    """Drops expired values from a store that keeps them until asked (``sweep()``), every
    ``interval`` seconds on the injected clock; stores without ``sweep`` are left alone."""

    def __init__(self, clock, store, interval: float = 60.0):
        self._clock = clock
        self._store = store
        self._interval = interval
        self._call = None

    def start(self):
        if hasattr(self._store, "sweep"):
            self._call = self._clock.callLater(self._interval, self._sweep)

    def _sweep(self):
        try:
            self._store.sweep()
        except Exception:
            log.failure("cache sweep failed")
        self._call = self._clock.callLater(self._interval, self._sweep)

    def stop(self):
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()


_PENDING = object()


def _now(d):
    """The result of an already-fired, successful Deferred, else ``_PENDING`` (a Failure is
    left in the Deferred, so the asynchronous path reports it)."""
    if d.called and not d.paused and not isinstance(d.result, Failure):
        return d.result
    return _PENDING


def _variant_found(entry, key, index):
    if not isinstance(entry, CacheEntry):
        entry = None
    return Found(entry, key, None if entry is not None else "vary-miss", index)


_REQUEST_DIRECTIVE_FIELDS = frozenset([b"cache-control", b"pragma"])


def _has_request_directives(headers) -> bool:
    for name, _ in headers:
        if name in _REQUEST_DIRECTIVE_FIELDS:
            return True
    return False
