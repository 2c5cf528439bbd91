"""``MemcachedStore``: values in memcached, shared by every proxy that uses the same servers.

Values are spread over the servers by consistent hashing of their head's name
(``memcached_client``); their layout (names, heads, chunks) is in ``memcached_items``.
Everything about a value lives on its server: head, chunks, and a copy of the purge
counters it depends on. So a ``get`` is one command to one server (head and the key's
purge counters), two when the value has tags or is chunked (tag counters and chunks); a
``put`` reads (or makes) the counters there, writes the chunks, then the head. A server
down loses only its own values (misses); a ``delete`` or a failed ``put`` that could not
reach it leaves its old value there, to be found again when it is back. Proxies sharing a
cache must spell the servers alike (the ring hashes "host:port"; their order is free).

Purges cannot list keys, so they bump generation counters kept in memcached (see
``memcached_items``), on every server; a purge made by one proxy is therefore seen by all
of them. They fire with -1 ("done, count unknown"), or 0 when a server could not be
reached: its values were not purged, and would be served again once it is back. Retry
such a purge (bumping twice is harmless). What they match:

* ``purge()``: everything. ``purge(tag=t)``: every value put with tag ``t``.
* ``purge(prefix=p)``: every key under the longest "/"-ending prefix of ``p``'s path (at
  most ``PREFIX_DEPTH`` levels deep): ``http://h/a/`` exactly what it says, ``http://h/a/x``
  everything under ``http://h/a/``. Never less than asked, sometimes more.
* ``purge(prefix=p, tag=t)``: every value with tag ``t``, whatever its key (more than asked:
  counting every prefix-and-tag pair would cost a counter per pair on every ``get``).

memcached bounds its memory itself and cannot count what it holds: ``stats`` reports
``entries``, ``bytes`` and ``evictions`` as -1. A value is gone at its ``ttl`` by this
store's clock (the head records when); memcached is told to drop it a second later.
"""

from __future__ import annotations

import math
import random

from twisted.internet.defer import gatherResults, succeed
from twisted.logger import Logger
from zope.interface import implementer

from revproxy.cache.entry import marked_stale, value_from_bytes, value_to_bytes
from revproxy.cache.stores import memcached_options as opts
from revproxy.cache.stores.memcached_client import MemcachedClient
from revproxy.cache.stores.memcached_items import (
    GONE, HARD_STEP, STALE, chunk_name, counter_name, decode_head, encode_head, head_overhead,
    initial_generation, item_name, join_chunks, parse_counter, prefix_points, purge_point,
    split_payload, verdict)
from revproxy.cache.stores.options import MIB, check_options
from revproxy.interfaces import ICacheStore

_OPTIONS = ("servers", "connections_per_server", "timeout", "max_object", "item_max",
            "key_prefix")
_MAX_EXPIRE = 30 * 86400  # memcached reads larger expiry times as Unix timestamps
_NAME_CACHE = 4096
log = Logger(namespace="revproxy.cache")


def memcached_expiry(ttl: float) -> int:
    """The memcached expiry (whole seconds, relative) for a value kept ``ttl`` seconds."""
    return min(int(math.ceil(ttl)) + 1, _MAX_EXPIRE)


@implementer(ICacheStore)
class MemcachedStore:
    """An ``ICacheStore`` on the memcached ``servers`` (``[(host, port), ...]``), with
    ``connections_per_server`` connections each and ``timeout`` seconds per operation.
    Values over ``max_object`` bytes (serialised) are refused; values over ``item_max``
    are split into chunk items. Item names start with ``key_prefix``. ``clock`` (default:
    the reactor) gives the time for expiry; ``client`` replaces the ``MemcachedClient``
    (tests); ``rng`` gives write ids and new counters' values."""

    name = "memcached"

    def __init__(self, reactor, servers, connections_per_server: int = 2,
                 timeout: float = 2.0, item_max: int = 1000000, max_object: int = 8 * MIB,
                 clock=None, key_prefix: bytes = b"rp:", client=None, rng=None) -> None:
        opts.check_settings(servers, connections_per_server, timeout, item_max, max_object,
                            key_prefix)
        self.servers = list(servers)
        self.item_max = item_max
        self.max_object = max_object
        self.key_prefix = key_prefix
        self._clock = clock if clock is not None else reactor
        self._rng = rng if rng is not None else random.SystemRandom()
        if client is None:
            client = MemcachedClient(reactor, self.servers, connections_per_server, timeout,
                                     self._rng)
        self._client = client
        self._names = {}
        self._closed = False
        self.hits = self.misses = self.collisions = self.corrupt = 0
        self.purges = self.failed_purges = 0

    @classmethod
    def from_options(cls, options, reactor) -> "MemcachedStore":
        """A store from ``store_options``: ``servers`` (required: "host:port,host:port" or
        a list), ``connections_per_server`` (2), ``timeout`` (2 s), ``item_max``
        (1000000), ``max_object`` ("8m"), ``key_prefix`` ("rp:"). ValueError for bad ones."""
        options = check_options(cls.name, options, _OPTIONS)
        servers = opts.servers_option(options)
        item_max, max_object = opts.sizes_option(options, 1000000, 8 * MIB)
        return cls(reactor, servers, opts.connections_option(options, 2),
                   opts.timeout_option(options, 2.0), item_max, max_object,
                   key_prefix=opts.prefix_option(options, b"rp:"))

    # -- names ---------------------------------------------------------------------------------
    def _counter(self, kind: bytes, name: bytes) -> bytes:
        """The counter item's name, remembered: every get asks for the same few."""
        cached = self._names.get((kind, name))
        if cached is None:
            if len(self._names) >= _NAME_CACHE:
                self._names.clear()
            cached = self._names[kind, name] = counter_name(self.key_prefix, kind, name)
        return cached

    def _point_counters(self, key: bytes):
        return [self._counter(b"p", point) for point in prefix_points(key)]

    # -- get -----------------------------------------------------------------------------------
    def get(self, key):
        if self._closed:
            return succeed(None)
        head_name = item_name(self.key_prefix, key)
        node = self._client.node_for(head_name)
        counters = self._point_counters(key)
        d = self._client.get_multi(node, [head_name] + counters)
        d.addCallback(self._got_head, key, node, head_name, counters)
        return d.addCallback(self._count)

    def _count(self, value):
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def _got_head(self, found, key, node, head_name, counters):
        head = self._head(found[head_name], key)
        if head is None:
            return None
        points = len(counters)
        if len(head.generations) != points + len(head.tags):
            self.corrupt += 1
            return None
        state = verdict(head.generations[:points], [parse_counter(found[c]) for c in counters])
        if state == GONE:
            return None
        if not head.tags and not head.chunks:
            return self._value(head.inline, state)
        tag_counters = [self._counter(b"t", tag) for tag in head.tags]
        chunks = [chunk_name(head_name, head.write_id, i) for i in range(head.chunks)]
        d = self._client.get_multi(node, tag_counters + chunks)
        return d.addCallback(self._got_rest, head, state, tag_counters, chunks)

    def _got_rest(self, found, head, state, tag_counters, chunks):
        recorded = head.generations[len(head.generations) - len(tag_counters):]
        tag_state = verdict(recorded, [parse_counter(found[c]) for c in tag_counters])
        if tag_state == GONE:
            return None
        payload = head.inline
        if head.chunks:
            payload = join_chunks(head, [found[name] for name in chunks])
            if payload is None:  # a chunk evicted, unreachable or from another write
                return None
        return self._value(payload, STALE if STALE in (state, tag_state) else state)

    def _head(self, data, key):
        """The head in ``data`` if it is a valid, unexpired one for ``key``, else None."""
        if data is None:
            return None
        try:
            head = decode_head(data)
        except ValueError as e:
            self.corrupt += 1
            log.debug("memcached head unreadable: {error}", error=e)
            return None
        if head.key != key:
            self.collisions += 1
            return None
        if head.expires_at <= self._clock.seconds():
            return None
        return head

    def _value(self, payload, state):
        try:
            value = value_from_bytes(payload)
        except ValueError:
            self.corrupt += 1
            return None
        return marked_stale(value) if state == STALE else value

    # -- put -----------------------------------------------------------------------------------
    def put(self, key, value, ttl, tags=()):
        if self._closed:
            return succeed(False)
        head_name = item_name(self.key_prefix, key)
        node = self._client.node_for(head_name)
        if not ttl > 0:
            return self._refuse(node, head_name)
        payload = value_to_bytes(value)
        if len(payload) > self.max_object:
            return self._refuse(node, head_name)
        tags = tuple(tags)
        counters = self._point_counters(key) + [self._counter(b"t", t) for t in tags]
        d = self._generations(node, counters)
        return d.addCallback(self._write, key, node, head_name, payload, ttl, tags)

    def _refuse(self, node, head_name):
        """False, once the old value (its head) is deleted."""
        return self._client.delete(node, head_name).addCallback(lambda _: False)

    def _generations(self, node, counters):
        """A Deferred of the counters' current values on ``node``, making the missing
        ones; None when one can be neither read nor made."""
        d = self._client.get_multi(node, counters)
        return d.addCallback(self._make_missing, node, counters)

    def _make_missing(self, found, node, counters):
        current = {name: parse_counter(found[name]) for name in counters}
        missing = [name for name, value in current.items() if value is None]
        if not missing:
            return [current[name] for name in counters]
        fresh = [initial_generation(self._rng) for _ in missing]
        adds = [self._client.add(node, name, b"%d" % value)
                for name, value in zip(missing, fresh)]

        def added(stored):
            lost = []
            for name, value, ok in zip(missing, fresh, stored):
                if ok:
                    current[name] = value
                else:  # made meanwhile by another writer (or unreachable): read it
                    lost.append(name)
            if not lost:
                return [current[name] for name in counters]
            return self._client.get_multi(node, lost).addCallback(reread)

        def reread(found_again):
            for name, raw in found_again.items():
                current[name] = parse_counter(raw)
            values = [current[name] for name in counters]
            return None if None in values else values

        return gatherResults(adds).addCallback(added)

    def _write(self, generations, key, node, head_name, payload, ttl, tags):
        if generations is None or self._closed:
            return self._refuse(node, head_name)
        expires_at = self._clock.seconds() + ttl
        expire = memcached_expiry(ttl)
        write_id = self._rng.getrandbits(32)
        overhead = head_overhead(key, tags, len(generations))
        if overhead + len(payload) <= self.item_max:
            head = encode_head(key, tags, expires_at, payload, generations, 0, write_id)
            return self._client.set(node, head_name, head, expire).addCallback(
                self._stored, node, head_name)
        if overhead > self.item_max:
            return self._refuse(node, head_name)
        pieces = split_payload(payload, self.item_max)
        head = encode_head(key, tags, expires_at, payload, generations, len(pieces), write_id)
        sets = [self._client.set(node, chunk_name(head_name, write_id, i), piece, expire)
                for i, piece in enumerate(pieces)]
        return gatherResults(sets).addCallback(
            self._chunks_stored, node, head_name, head, expire)

    def _chunks_stored(self, results, node, head_name, head, expire):
        # The head goes last: a reader never finds a head whose chunks are not all there.
        if not all(results):
            return self._refuse(node, head_name)
        return self._client.set(node, head_name, head, expire).addCallback(
            self._stored, node, head_name)

    def _stored(self, ok, node, head_name):
        return True if ok else self._refuse(node, head_name)

    # -- delete, purge -------------------------------------------------------------------------
    def delete(self, key):
        if self._closed:
            return succeed(None)
        head_name = item_name(self.key_prefix, key)
        d = self._client.delete(self._client.node_for(head_name), head_name)
        return d.addCallback(lambda _: None)

    def purge(self, prefix=None, tag=None, soft=False):
        if self._closed:
            return succeed(0)
        if tag is not None:
            counter = self._counter(b"t", tag)
        else:
            counter = self._counter(b"p", purge_point(prefix or b""))
        step = 1 if soft else HARD_STEP
        nodes = self._client.nodes
        d = gatherResults([self._client.incr(node, counter, step) for node in nodes])
        return d.addCallback(self._purged, nodes, prefix, tag)

    def _purged(self, results, nodes, prefix, tag):
        # An int: bumped. False: no such counter there (never made, evicted, server
        # restarted), so every value that recorded it misses already. None: unreachable.
        missed = [node for node, result in zip(nodes, results) if result is None]
        if missed:
            self.failed_purges += 1
            log.error("memcached purge (prefix={prefix!r}, tag={tag!r}) not done on "
                      "{servers}: unreachable; retry it", prefix=prefix, tag=tag,
                      servers=b", ".join(missed).decode("ascii"))
            return 0
        self.purges += 1
        return -1

    # -- the rest ------------------------------------------------------------------------------
    def stats(self):
        stats = {"entries": -1, "bytes": -1, "evictions": -1, "hits": self.hits,
                 "misses": self.misses, "collisions": self.collisions,
                 "corrupt": self.corrupt, "purges": self.purges,
                 "failed_purges": self.failed_purges}
        stats.update(self._client.stats())
        return stats

    def close(self):
        """Drop the connections; a Deferred firing once they are closed."""
        self._closed = True
        return self._client.close()

    def __repr__(self):
        return "<MemcachedStore %s>" % ",".join("%s:%d" % server for server in self.servers)
