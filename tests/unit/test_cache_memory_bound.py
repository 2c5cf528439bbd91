"""Memory held by the cache's memos when a store builds a new entry object per hit."""

from __future__ import annotations

import gc
import weakref

from twisted.trial import unittest

from revproxy.cache.entry import CacheEntry, value_from_bytes, value_to_bytes
from tests.unit.test_cache_path import CacheWorld, get, response


class TrackedEntry(CacheEntry):
    """A CacheEntry that can be weakly referenced: the test sees which copies stay alive."""

    __slots__ = ("__weakref__",)


class CopyingStore:
    """Wraps a store: every ``get`` answers a fresh copy decoded from bytes, as the disk
    store without memory tier and memcached do; ``copies`` weakly refers to each."""

    def __init__(self, inner):
        self._inner = inner
        self.copies = []

    def get(self, key):
        return self._inner.get(key).addCallback(self._copy)

    def _copy(self, value):
        if value is None:
            return None
        copy = value_from_bytes(value_to_bytes(value))
        copy = TrackedEntry(*[getattr(copy, name) for name in CacheEntry._FIELDS])
        self.copies.append(weakref.ref(copy))
        return copy

    def __getattr__(self, name):
        return getattr(self._inner, name)


class MemoBoundTests(unittest.TestCase):
    def test_hits_on_fresh_entry_copies_keep_no_bodies_alive(self):
        """200 hits, each on a new copy of a 256 KiB entry: once answered, no copy (so no
        body) is kept alive by the cache's memos (they once kept up to 4096 of them)."""
        world = CacheWorld(self, max_object="1m")
        body = b"x" * (256 * 1024)
        first, _ = world.fetch(get(), response(body))
        self.assertTrue(first.endswith(body))
        store = world.runtime.cache.store = CopyingStore(world.runtime.cache.store)
        proto, transport = world.client()
        for i in range(200):
            if i % 50 == 0:
                world.reactor.advance(1)  # a new Age: new heads to remember
            proto.dataReceived(get())
            self.assertTrue(transport.value().endswith(body))
            transport.clear()
        for _ in range(3):
            gc.collect()
        self.assertEqual(len(store.copies), 200)
        alive = [ref for ref in store.copies if ref() is not None]
        self.assertLessEqual(len(alive), 1)
