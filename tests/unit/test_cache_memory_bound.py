"""Memory held by the cache's memos when a store builds a new entry object per hit."""

from __future__ import annotations

import gc
import tracemalloc

from twisted.internet import defer
from twisted.trial import unittest

from revproxy.cache.entry import value_from_bytes, value_to_bytes
from tests.unit.test_cache_path import CacheWorld, get, response


class CopyingStore:
    """Wraps a store: every ``get`` answers a fresh copy decoded from bytes, as the disk
    store without memory tier and memcached do."""

    def __init__(self, inner):
        self._inner = inner
        self.gets = 0

    def get(self, key):
        self.gets += 1
        return self._inner.get(key).addCallback(
            lambda v: None if v is None else value_from_bytes(value_to_bytes(v)))

    def __getattr__(self, name):
        return getattr(self._inner, name)


class MemoBoundTests(unittest.TestCase):
    def test_hits_on_fresh_entry_copies_keep_no_bodies_alive(self):
        """200 hits of a 256 KiB entry, each a new object: memory held afterwards stays
        under 8 MiB (the memos once kept every copy, 50 MiB here)."""
        world = CacheWorld(self, max_object="1m")
        body = b"x" * (256 * 1024)
        first, _ = world.fetch(get(), response(body))
        self.assertTrue(first.endswith(body))
        store = world.runtime.cache.store = CopyingStore(world.runtime.cache.store)
        proto, transport = world.client()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(200):
                if i % 50 == 0:
                    world.reactor.advance(1)  # new Age: new heads to remember
                proto.dataReceived(get())
                self.assertTrue(transport.value().endswith(body))
                transport.clear()
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        self.assertEqual(store.gets, 200)
        self.assertLess(held, 8 * 1024 * 1024)
