"""``MemoryStore``: values kept as objects in this process, least recently used evicted first.

Every Deferred it returns has already fired, so a hit is served without a reactor turn.
Values are kept as given (no serialisation): ``get`` returns the very object ``put`` got,
so callers must not mutate what they store or fetch (``CacheEntry.replace`` makes copies).
"""

from __future__ import annotations

from twisted.internet.defer import succeed
from zope.interface import implementer

from revproxy.cache.entry import marked_stale
from revproxy.cache.stores.index import LruIndex, Slot
from revproxy.cache.stores.options import (
    MIB, WallClock, check_bounds, check_options, size_option)
from revproxy.interfaces import ICacheStore

_OPTIONS = ("max_bytes", "max_object")


@implementer(ICacheStore)
class MemoryStore:
    """An ``ICacheStore`` in memory: at most ``max_bytes`` (by ``value.size``), no value over
    ``max_object``; expiry is checked on ``get`` (``sweep`` drops every expired value);
    ``clock`` has ``seconds()`` (default: the system time)."""

    name = "memory"

    def __init__(self, max_bytes: int = 256 * MIB, max_object: int = 8 * MIB,
                 clock=None) -> None:
        check_bounds(self.name, max_bytes, max_object)
        self.max_object = max_object
        self._clock = clock if clock is not None else WallClock()
        self._index = LruIndex(max_bytes)
        self._closed = False
        self.hits = self.misses = self.evictions = self.expirations = 0

    @classmethod
    def from_options(cls, options, reactor) -> "MemoryStore":
        """A store from ``store_options`` (``max_bytes``, ``max_object``: sizes like "64m";
        ``max_object`` defaults to 8 MiB or ``max_bytes`` if smaller); the reactor is the
        clock. ValueError for bad options."""
        options = check_options(cls.name, options, _OPTIONS)
        max_bytes = size_option(cls.name, options, "max_bytes", 256 * MIB)
        max_object = size_option(cls.name, options, "max_object", min(8 * MIB, max_bytes))
        return cls(max_bytes, max_object, clock=reactor)

    def get(self, key):
        slot = self._index.slots.get(key)
        if slot is not None:
            if slot.expires_at > self._clock.seconds():
                self._index.touch(key)
                self.hits += 1
                return succeed(slot.value)
            self._index.remove(key)
            self.expirations += 1
        self.misses += 1
        return succeed(None)

    def put(self, key, value, ttl, tags=()):
        size = value.size
        if self._closed or not ttl > 0 or size > self.max_object:
            self._index.remove(key)
            return succeed(False)
        slot = Slot(value, size, self._clock.seconds() + ttl, tags)
        _, evicted = self._index.add(key, slot)
        self.evictions += len(evicted)
        return succeed(True)

    def delete(self, key):
        self._index.remove(key)
        return succeed(None)

    def purge(self, prefix=None, tag=None, soft=False):
        keys = self._index.matching(prefix, tag)
        for key in keys:
            if soft:
                slot = self._index.slots[key]
                slot.value = marked_stale(slot.value)
                slot.stale = True
            else:
                self._index.remove(key)
        return succeed(len(keys))

    def sweep(self) -> int:
        """Drop every value past its ttl now; how many were dropped. Call it from a timer
        so expired values that nobody asks for again do not hold memory."""
        keys = self._index.expired(self._clock.seconds())
        for key in keys:
            self._index.remove(key)
        self.expirations += len(keys)
        return len(keys)

    def stats(self):
        return {"entries": len(self._index), "bytes": self._index.bytes, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions,
                "expirations": self.expirations, "max_bytes": self._index.max_bytes}

    def close(self):
        self._closed = True
        self._index.clear()
        return succeed(None)

    def __repr__(self):
        return "<MemoryStore %d entries, %d/%d bytes>" % (
            len(self._index), self._index.bytes, self._index.max_bytes)
