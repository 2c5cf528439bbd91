"""The memcached store without sockets: its item layout and purge points (pure), the
consistent-hash ring, the store's logic over a fake client (the ICacheStore contract,
chunking, generation counters, two proxies sharing servers, servers down), and the real
client's pooling, timeouts and reconnection over a MemoryReactorClock."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from revproxy.cache.entry import VariantIndex
from revproxy.cache.registry import build_store, store_factories
from revproxy.cache.stores import memcached_items as items
from revproxy.cache.stores.memcached import MemcachedStore, memcached_expiry
from revproxy.cache.stores.memcached_client import HashRing, MemcachedClient, hash64
from revproxy.interfaces import ICacheStore
from revproxy.testing import CacheStoreContractMixin, sample_entry

SERVERS = [("10.0.0.1", 11211), ("10.0.0.2", 11211)]
N1, N2 = b"10.0.0.1:11211", b"10.0.0.2:11211"


class FakeMemcached:
    """The ``MemcachedClient`` API over one dict per server (``items[node]``), with the
    real ring; every Deferred has already fired. Servers in ``down`` answer nothing
    (misses, False, None), as the real client does."""

    def __init__(self, nodes=(b"s1:1", b"s2:2", b"s3:3")):
        self.ring = HashRing(nodes)
        self.nodes = self.ring.nodes
        self.items = {node: {} for node in nodes}
        self.down = set()
        self.expiry = {}
        self.calls = []

    def node_for(self, name):
        return self.ring.node_for(name)

    def _items(self, node):
        return None if node in self.down else self.items[node]

    def get_multi(self, node, names):
        self.calls.append(("get", node, list(names)))
        held = self._items(node)
        return succeed({name: None if held is None else held.get(name) for name in names})

    def set(self, node, name, value, expire=0):
        self.calls.append(("set", node, name))
        held = self._items(node)
        if held is None:
            return succeed(False)
        held[name] = value
        self.expiry[name] = expire
        return succeed(True)

    def add(self, node, name, value, expire=0):
        held = self._items(node)
        if held is None or name in held:
            return succeed(False)
        return self.set(node, name, value, expire)

    def delete(self, node, name):
        held = self._items(node)
        return succeed(held is not None and held.pop(name, None) is not None)

    def incr(self, node, name, by):
        held = self._items(node)
        if held is None:
            return succeed(None)
        if name not in held:
            return succeed(False)
        held[name] = b"%d" % ((int(held[name]) + by) % 2 ** 64)
        return succeed(int(held[name]))

    def held_by(self, key, prefix=b"rp:"):
        """The items of the server holding cache key ``key``."""
        return self.items[self.node_for(items.item_name(prefix, key))]

    def names(self):
        return {name for held in self.items.values() for name in held}

    def stats(self):
        return {"servers": len(self.items), "servers_up": len(self.items) - len(self.down)}

    def close(self):
        return succeed(None)


def fake_store(client, clock=None, item_max=4096, max_object=50000, prefix=b"rp:", seed=1):
    clock = clock if clock is not None else Clock()
    return MemcachedStore(clock, SERVERS, item_max=item_max, max_object=max_object,
                          clock=clock, key_prefix=prefix, client=client,
                          rng=random.Random(seed))


class MemcachedContractOverrides:
    """What the memcached store does instead of the contract tests it cannot pass: it
    cannot count what memcached holds, bounds no memory itself, and a prefix-and-tag purge
    removes everything with the tag. Mixed in before ``CacheStoreContractMixin``."""

    def test_put_overwrites(self):
        """A second put under a key replaces the first value."""
        store = self.new_store()
        self.put(store, b"k", sample_entry(b"k", body=b"old"))
        self.put(store, b"k", sample_entry(b"k", body=b"new", status=203))
        found = self.get(store, b"k")
        self.assertEqual((found.body, found.status), (b"new", 203))

    def test_oversize_value_is_refused(self):
        """A value over max_object: put fires False, and the key's old value is gone."""
        store = self.new_store()
        self.put(store, b"k")
        big = sample_entry(b"k", body=b"x" * (self.MAX_OBJECT + 1))
        self.assertIs(self.put(store, b"k", big), False)
        self.assertIsNone(self.get(store, b"k"))

    def test_hard_purge_by_prefix_and_tag(self):
        """purge(prefix, tag) removes every value with the tag, whatever the prefix."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertEqual(self.resolve(store.purge(prefix=b"GET a.", tag=b"blue")), -1)
        self.assertEqual(sorted(self.present(store)), [b"GET a.test/1", b"GET b.test/2"])

    def test_lru_eviction_keeps_the_most_recently_read(self):
        """memcached bounds memory itself: values past max_bytes in total are all kept, and
        entries, bytes and evictions are reported unknown (-1)."""
        store = self.new_store()
        body = b"b" * (self.MAX_BYTES // 5)
        for i in range(6):
            key = b"key-%d" % i
            self.assertIs(self.put(store, key, sample_entry(key, body=body)), True)
        for i in range(6):
            self.assertIsNotNone(self.get(store, b"key-%d" % i))
        stats = store.stats()
        self.assertEqual((stats["entries"], stats["bytes"], stats["evictions"]), (-1, -1, -1))

    def test_stats_count_hits_misses_entries_and_bytes(self):
        """stats() counts hits and misses; entries and bytes are unknown (-1)."""
        store = self.new_store()
        self.put(store, b"k1", sample_entry(b"k1", body=b"x" * 1000))
        self.get(store, b"k1")
        self.get(store, b"k1")
        self.get(store, b"nope")
        stats = store.stats()
        self.assertEqual((stats["hits"], stats["misses"], stats["entries"], stats["bytes"]),
                         (2, 1, -1, -1))


class FakeClientContractTests(MemcachedContractOverrides, CacheStoreContractMixin,
                              unittest.TestCase):
    """The contract over the fake client, with 4 KiB items so larger bodies are chunked."""

    def make_store(self, max_bytes, max_object):
        return fake_store(FakeMemcached(), self.clock, item_max=4096, max_object=max_object)


# --- pure parts ----------------------------------------------------------------------------

class PurgePointTests(unittest.TestCase):
    def test_points_are_root_and_slash_prefixes_of_the_path(self):
        """A key's purge points: "" then its "/"-ending prefixes, "://" and query skipped."""
        self.assertEqual(items.prefix_points(b"http://h/a/b?x=/y/\x00h:z=/"),
                         [b"", b"http://h/", b"http://h/a/"])
        self.assertEqual(items.prefix_points(b"GET a.test/1"), [b"", b"GET a.test/"])
        self.assertEqual(items.prefix_points(b"nokey"), [b""])

    def test_depth_is_bounded(self):
        """At most PREFIX_DEPTH "/"-prefixes, the shallowest ones."""
        key = b"http://h/" + b"d/" * 20 + b"leaf"
        points = items.prefix_points(key)
        self.assertEqual(len(points), items.PREFIX_DEPTH + 1)
        self.assertEqual(points[-1], b"http://h/" + b"d/" * (items.PREFIX_DEPTH - 1))

    def test_purge_point_widens_to_a_slash(self):
        """A prefix not ending at "/" widens to the last "/" of its path; no "/" at all
        (or only "://") means everything."""
        self.assertEqual(items.purge_point(b"http://h/a/"), b"http://h/a/")
        self.assertEqual(items.purge_point(b"http://h/a/pa"), b"http://h/a/")
        self.assertEqual(items.purge_point(b"http://h"), b"")
        self.assertEqual(items.purge_point(b"http:/"), b"")

    @settings(max_examples=200)
    @given(st.binary(max_size=60).map(lambda b: bytes(b"/:?a\x00"[x % 5] for x in b)),
           st.integers(min_value=0, max_value=60))
    def test_purge_point_of_a_prefix_is_a_point_of_the_key(self, key, cut):
        """Soundness: for any key and any prefix of it, the point the purge bumps is one of
        the key's points, so a prefix purge never misses a key it covers."""
        self.assertIn(items.purge_point(key[:cut]), items.prefix_points(key))

    @settings(max_examples=100)
    @given(st.binary(max_size=600))
    def test_item_names_are_valid_memcached_keys(self, key):
        """Any key gives a name under 250 bytes without spaces or control bytes."""
        for name in (items.item_name(b"rp:", key), items.counter_name(b"rp:", b"t", key),
                     items.chunk_name(items.item_name(b"rp:", key), 2 ** 32 - 1, 999)):
            self.assertLessEqual(len(name), 250)
            self.assertFalse(any(c <= 32 or c == 127 for c in name), name)



class HeadTests(unittest.TestCase):
    def encoded(self, chunks=0, payload=b"payload"):
        return items.encode_head(b"http://h/k", (b"t1", b"t2"), 123.5, payload,
                                 [1 << 32, 5, 7, 9], chunks, 0xABCD)

    def test_round_trip(self):
        """A head decodes to what was encoded; its size is head_overhead plus the payload."""
        data = self.encoded()
        head = items.decode_head(data)
        self.assertEqual((head.key, head.tags, head.expires_at, head.generations, head.inline,
                          head.chunks, head.write_id),
                         (b"http://h/k", (b"t1", b"t2"), 123.5, (1 << 32, 5, 7, 9), b"payload",
                          0, 0xABCD))
        self.assertEqual(len(data), items.head_overhead(b"http://h/k", (b"t1", b"t2"), 4) + 7)

    def test_every_truncation_is_a_value_error(self):
        """A head cut anywhere, or with a flipped payload byte, raises ValueError."""
        data = self.encoded()
        for cut in range(len(data)):
            with self.assertRaises(ValueError):
                items.decode_head(data[:cut])
        with self.assertRaises(ValueError):
            items.decode_head(data[:-1] + b"X")

    @settings(max_examples=200)
    @given(st.binary(max_size=200))
    def test_garbage_is_a_value_error_or_a_head(self, data):
        """Arbitrary bytes (maybe after a valid prefix) never raise anything but ValueError."""
        for candidate in (data, b"RPM\x01" + data):
            try:
                items.decode_head(candidate)
            except ValueError:
                pass

    def test_chunks_join_only_when_all_there_and_intact(self):
        """join_chunks gives the payload back, or None for a missing or altered chunk."""
        payload = bytes(range(256)) * 40
        head = items.decode_head(self.encoded(chunks=3, payload=payload))
        pieces = items.split_payload(payload, 4000)
        self.assertEqual(len(pieces), 3)
        self.assertEqual(items.join_chunks(head, pieces), payload)
        self.assertIsNone(items.join_chunks(head, pieces[:2] + [None]))
        self.assertIsNone(items.join_chunks(head, pieces[:2] + [pieces[2][:-1] + b"?"]))
        self.assertIsNone(items.join_chunks(head, pieces[:2]))

    def test_verdict(self):
        """Hard part moved or counter missing: gone; only soft part moved: stale."""
        base = 5 << 32
        self.assertEqual(items.verdict([base, base], [base, base]), items.FRESH)
        self.assertEqual(items.verdict([base, base], [base, base + 1]), items.STALE)
        self.assertEqual(items.verdict([base, base], [base + 1, base + items.HARD_STEP]),
                         items.GONE)
        self.assertEqual(items.verdict([base], [None]), items.GONE)

    def test_memcached_expiry(self):
        """memcached keeps a value a second past its ttl, at most 30 days (relative)."""
        self.assertEqual(memcached_expiry(10.0), 11)
        self.assertEqual(memcached_expiry(0.2), 2)
        self.assertEqual(memcached_expiry(1e9), 30 * 86400)


class HashRingTests(unittest.TestCase):
    NODES = [b"10.0.0.%d:11211" % i for i in range(1, 5)]
    KEYS = [b"rp:%d" % i for i in range(20000)]

    def test_stable_across_machines(self):
        """The hash is blake2b (not Python's hash): these values hold everywhere."""
        self.assertEqual(hash64(b"abc"), 0xD8BB14D833D59559)
        ring = HashRing(self.NODES)
        self.assertEqual([ring.node_for(k) for k in (b"a", b"b", b"c", b"d")],
                         [b"10.0.0.4:11211", b"10.0.0.4:11211", b"10.0.0.2:11211",
                          b"10.0.0.2:11211"])

    def test_keys_spread_evenly(self):
        """Each of four servers gets 20-30% of the keys."""
        ring = HashRing(self.NODES)
        counts = {}
        for key in self.KEYS:
            node = ring.node_for(key)
            counts[node] = counts.get(node, 0) + 1
        for node in self.NODES:
            self.assertTrue(0.20 < counts[node] / len(self.KEYS) < 0.30, counts)

    def test_adding_a_server_moves_about_one_in_n_keys_all_to_it(self):
        """Going from 4 to 5 servers moves ~1/5 of the keys, every one to the new server."""
        before, after = HashRing(self.NODES), HashRing(self.NODES + [b"10.0.0.9:11211"])
        moved = [k for k in self.KEYS if before.node_for(k) != after.node_for(k)]
        self.assertTrue(0.14 < len(moved) / len(self.KEYS) < 0.26, len(moved))
        self.assertEqual({after.node_for(k) for k in moved}, {b"10.0.0.9:11211"})

    def test_removing_a_server_moves_only_its_keys(self):
        """Keys of the remaining servers stay where they were."""
        before, after = HashRing(self.NODES), HashRing(self.NODES[1:])
        for key in self.KEYS[:5000]:
            if before.node_for(key) != self.NODES[0]:
                self.assertEqual(after.node_for(key), before.node_for(key))

    def test_needs_distinct_nodes(self):
        """An empty ring or a repeated node is a ValueError."""
        self.assertRaises(ValueError, HashRing, [])
        self.assertRaises(ValueError, HashRing, [b"a:1", b"a:1"])


# --- the store's logic over the fake client ------------------------------------------------

class StoreLogicTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.fake = FakeMemcached()
        self.store = fake_store(self.fake, self.clock)

    def put(self, key, body=b"hello", tags=(), ttl=60.0, store=None):
        entry = sample_entry(key, body=body, tags=tags)
        return self.successResultOf((store or self.store).put(key, entry, ttl, tags))

    def get(self, key, store=None):
        return self.successResultOf((store or self.store).get(key))

    def purge(self, store=None, **kwargs):
        return self.successResultOf((store or self.store).purge(**kwargs))

    def gets_for(self, call):
        del self.fake.calls[:]
        call()
        return [c for c in self.fake.calls if c[0] == "get"]

    def test_get_is_one_command_to_one_server(self):
        """A small untagged value costs one get on its server (head and purge counters);
        a tagged one a second get, on the same server (the tag counters)."""
        self.put(b"http://h/a", tags=())
        self.put(b"http://h/b", tags=(b"t",))
        gets = self.gets_for(lambda: self.get(b"http://h/a"))
        self.assertEqual([node for _, node, _ in gets],
                         [self.fake.node_for(items.item_name(b"rp:", b"http://h/a"))])
        gets = self.gets_for(lambda: self.get(b"http://h/b"))
        self.assertEqual(len(gets), 2)
        self.assertEqual(len({node for _, node, _ in gets}), 1)

    def test_everything_of_a_value_is_on_its_server(self):
        """Head, chunks and the counters it recorded are all on the head's server."""
        self.put(b"http://h/a/big", body=b"c" * 20000, tags=(b"t",))
        node = self.fake.node_for(items.item_name(b"rp:", b"http://h/a/big"))
        expected = {items.counter_name(b"rp:", b"p", p)
                    for p in (b"", b"http://h/", b"http://h/a/")}
        expected.add(items.counter_name(b"rp:", b"t", b"t"))
        self.assertTrue(expected < set(self.fake.items[node]))
        self.assertEqual(self.fake.names(), set(self.fake.items[node]))

    def test_big_value_is_chunked_on_the_heads_server(self):
        """A value over item_max goes in chunk items next to a small head; it comes back
        equal."""
        body = bytes(range(256)) * 80
        self.assertIs(self.put(b"http://h/big", body=body), True)
        head = items.item_name(b"rp:", b"http://h/big")
        chunks = [n for n in self.fake.names() if n.startswith(head + b"/")]
        self.assertEqual(len(chunks), 6)
        self.assertTrue(set(chunks) < set(self.fake.held_by(b"http://h/big")))
        self.assertEqual(self.get(b"http://h/big").body, body)

    def test_missing_or_altered_chunk_is_a_miss(self):
        """A chunk evicted or overwritten with other bytes makes the value a miss."""
        body = b"z" * 20000
        self.put(b"http://h/big", body=body)
        held = self.fake.held_by(b"http://h/big")
        chunk = sorted(n for n in held if b"/" in n)[1]
        original = held[chunk]
        held[chunk] = original[:-1] + b"!"
        self.assertIsNone(self.get(b"http://h/big"))
        del held[chunk]
        self.assertIsNone(self.get(b"http://h/big"))

    def test_rewrite_uses_fresh_chunk_names(self):
        """Each put of a chunked value writes chunks under a new write id."""
        self.put(b"http://h/big", body=b"a" * 9000)
        first = {n for n in self.fake.names() if b"/" in n}
        self.put(b"http://h/big", body=b"b" * 9000)
        second = {n for n in self.fake.names() if b"/" in n} - first
        self.assertEqual(len(second), len(first))
        self.assertEqual(self.get(b"http://h/big").body, b"b" * 9000)

    def test_head_too_big_for_an_item_is_refused(self):
        """A key whose head alone passes item_max is not stored (False)."""
        key = b"http://h/" + b"k" * 5000
        self.assertIs(self.put(key), False)
        self.assertIsNone(self.get(key))

    def test_hash_collision_is_a_miss(self):
        """A head holding another key under this key's name is a miss, counted."""
        self.put(b"http://h/one")
        one, two = (items.item_name(b"rp:", k) for k in (b"http://h/one", b"http://h/two"))
        self.fake.held_by(b"http://h/two")[two] = self.fake.held_by(b"http://h/one")[one]
        self.assertIsNone(self.get(b"http://h/two"))
        self.assertEqual(self.store.stats()["collisions"], 1)

    def test_corrupt_head_is_a_miss(self):
        """Bytes that are no head are a miss, not an error."""
        name = items.item_name(b"rp:", b"http://h/x")
        self.fake.held_by(b"http://h/x")[name] = b"RPM\x01garbage"
        self.assertIsNone(self.get(b"http://h/x"))
        self.assertEqual(self.store.stats()["corrupt"], 1)

    def test_memcached_expiry_follows_ttl(self):
        """Head and chunks are written with the ttl rounded up plus a second."""
        self.put(b"http://h/big", body=b"q" * 9000, ttl=99.5)
        written = {n: e for n, e in self.fake.expiry.items() if not n.startswith(b"rp:g")}
        self.assertEqual(set(written.values()), {101})
        self.assertEqual(len(written), 4)

    def test_prefix_purge_widens_to_the_last_slash(self):
        """purge(prefix="http://h/a/x") removes everything under http://h/a/, nothing
        else; purge(prefix="http://h/") removes the whole origin."""
        for key in (b"http://h/a/x1", b"http://h/a/y", b"http://h/b/x", b"http://g/a/x"):
            self.put(key)
        self.assertEqual(self.purge(prefix=b"http://h/a/x"), -1)
        self.assertIsNone(self.get(b"http://h/a/y"))
        self.assertIsNotNone(self.get(b"http://h/b/x"))
        self.purge(prefix=b"http://h/")
        self.assertIsNone(self.get(b"http://h/b/x"))
        self.assertIsNotNone(self.get(b"http://g/a/x"))

    def test_purge_deeper_than_the_depth_limit_purges_at_the_limit(self):
        """A prefix deeper than PREFIX_DEPTH levels removes its deepest tracked ancestor."""
        deep = b"http://h/" + b"d/" * 12
        self.put(deep + b"leaf")
        self.put(b"http://h/" + b"d/" * 7 + b"other")
        self.purge(prefix=deep)
        self.assertIsNone(self.get(deep + b"leaf"))
        self.assertIsNone(self.get(b"http://h/" + b"d/" * 7 + b"other"))

    def test_soft_purge_then_put_is_fresh_again(self):
        """A soft purge marks values stale; storing the revalidated value makes it fresh."""
        self.put(b"http://h/a", tags=(b"t",))
        self.purge(tag=b"t", soft=True)
        self.assertTrue(self.get(b"http://h/a").stale)
        self.put(b"http://h/a", tags=(b"t",))
        self.assertFalse(self.get(b"http://h/a").stale)
        self.purge(tag=b"t")
        self.assertIsNone(self.get(b"http://h/a"))

    def test_evicted_counter_never_resurrects_a_purged_value(self):
        """When a purge's counter is evicted, values that recorded it miss; a new counter
        starts at a fresh random value, not at what old heads recorded."""
        self.put(b"http://h/a/1")
        counter = items.counter_name(b"rp:", b"p", b"http://h/a/")
        held = self.fake.held_by(b"http://h/a/1")
        old = held.pop(counter)
        self.assertIsNone(self.get(b"http://h/a/1"))
        self.put(b"http://h/a/1")
        self.assertNotEqual(held[counter], old)
        self.assertIsNotNone(self.get(b"http://h/a/1"))

    def test_counter_made_meanwhile_is_read_back(self):
        """When another writer makes a missing counter first (add refused), put reads its
        value and records that."""
        counter = items.counter_name(b"rp:", b"t", b"shared")
        real_add = self.fake.add

        def racing_add(node, name, value, expire=0):
            if name == counter:
                self.fake.items[node][name] = b"%d" % (7 << 32)
            return real_add(node, name, value, expire)

        self.fake.add = racing_add
        self.assertIs(self.put(b"http://h/a", tags=(b"shared",)), True)
        self.assertIsNotNone(self.get(b"http://h/a"))
        self.assertEqual(self.fake.held_by(b"http://h/a")[counter], b"%d" % (7 << 32))
        self.fake.held_by(b"http://h/a")[counter] = b"%d" % (8 << 32)
        self.assertIsNone(self.get(b"http://h/a"))

    def test_two_stores_share_values_and_purges(self):
        """Two proxies on the same servers see each other's puts, deletes and purges."""
        other = fake_store(self.fake, self.clock, seed=2)
        self.put(b"http://h/a", tags=(b"t",))
        self.put(b"http://h/b", store=other)
        self.assertEqual(self.get(b"http://h/a", store=other).key, b"http://h/a")
        self.assertEqual(self.get(b"http://h/b").key, b"http://h/b")
        self.purge(tag=b"t", soft=True, store=other)
        self.assertTrue(self.get(b"http://h/a").stale)
        self.purge(prefix=b"http://h/", store=other)
        self.assertIsNone(self.get(b"http://h/a"))
        self.assertIsNone(self.get(b"http://h/b"))

    def test_key_prefixes_are_separate_namespaces(self):
        """Stores with different key_prefix do not see each other's values or purges."""
        other = fake_store(self.fake, self.clock, prefix=b"other:")
        self.put(b"http://h/a")
        self.put(b"http://h/a", store=other)
        self.purge(store=other)
        self.assertIsNone(self.get(b"http://h/a", store=other))
        self.assertIsNotNone(self.get(b"http://h/a"))

    def test_down_server_gives_misses_and_false(self):
        """With every server down: get misses, put is False, delete is None, purge 0."""
        self.put(b"http://h/a")
        self.fake.down.update(self.fake.items)
        self.assertIsNone(self.get(b"http://h/a"))
        self.assertIs(self.put(b"http://h/b"), False)
        self.assertIsNone(self.successResultOf(self.store.delete(b"http://h/a")))
        self.assertEqual(self.purge(tag=b"t"), 0)
        self.assertEqual(self.store.stats()["failed_purges"], 1)
        self.fake.down.clear()
        self.assertIsNotNone(self.get(b"http://h/a"))

    def test_one_server_down_loses_only_its_values(self):
        """With one server down, the values on the others still hit."""
        keys = [b"http://h/k%d" % i for i in range(30)]
        for key in keys:
            self.put(key)
        down = self.fake.nodes[0]
        self.fake.down.add(down)
        for key in keys:
            on_down = self.fake.node_for(items.item_name(b"rp:", key)) == down
            self.assertEqual(self.get(key) is None, on_down, key)

    def test_purge_with_a_server_down_is_reported_not_done(self):
        """A purge that cannot reach a server fires 0 (retry it); the reachable servers
        are purged anyway, and a retry once it is back purges it too."""
        keys = [b"http://h/k%d" % i for i in range(30)]
        for key in keys:
            self.put(key)
        down = self.fake.nodes[0]
        self.fake.down.add(down)
        self.assertEqual(self.purge(prefix=b"http://h/"), 0)
        self.assertEqual(self.store.stats()["failed_purges"], 1)
        self.fake.down.clear()
        still = [k for k in keys if self.get(k) is not None]
        self.assertTrue(still)
        self.assertEqual({self.fake.node_for(items.item_name(b"rp:", k)) for k in still}, {down})
        self.assertEqual(self.purge(prefix=b"http://h/"), -1)
        self.assertEqual([k for k in keys if self.get(k) is not None], [])

    def test_purge_of_a_missing_counter_is_done(self):
        """Purging what nothing recorded fires -1 and makes no counter."""
        self.assertEqual(self.purge(tag=b"never"), -1)
        self.assertEqual(self.fake.names(), set())

    def test_variant_index_survives_soft_but_not_hard_purge(self):
        """A VariantIndex is left by a soft purge and removed by a hard one."""
        index = VariantIndex(b"http://h/v", (b"accept",), (b"http://h/v\x00v:x",))
        self.successResultOf(self.store.put(b"http://h/v", index, 60.0))
        self.purge(soft=True)
        self.assertEqual(self.get(b"http://h/v"), index)
        self.purge()
        self.assertIsNone(self.get(b"http://h/v"))


class OptionsTests(unittest.TestCase):
    def build(self, **options):
        return MemcachedStore.from_options(options, MemoryReactorClock())

    def test_options(self):
        """servers as a string or a list, the other options as documented."""
        store = self.build(servers="a:1,[::1]:2", connections_per_server=3, timeout="500ms",
                           item_max="64k", max_object="2m", key_prefix="x:")
        self.assertEqual(store.servers, [("a", 1), ("::1", 2)])
        self.assertEqual((store.item_max, store.max_object, store.key_prefix),
                         (65536, 2 * 1024 * 1024, b"x:"))
        self.assertEqual(self.build(servers=["a:1"]).servers, [("a", 1)])

    def test_bad_options_name_the_option(self):
        """Each bad option is a ValueError naming it."""
        bad = [{}, {"servers": "a"}, {"servers": "a:1,a:1"}, {"servers": "a:99999"},
               {"servers": "a:1", "timeout": 0}, {"servers": "a:1", "item_max": 100},
               {"servers": "a:1", "connections_per_server": 0},
               {"servers": "a:1", "key_prefix": "has space"},
               {"servers": "a:1", "key_prefix": "a/b"}, {"servers": "a:1", "colour": 1}]
        for options in bad:
            name = (set(options) - {"servers"} or {"servers"}).pop()
            with self.assertRaises(ValueError) as caught:
                self.build(**options)
            self.assertIn(name, str(caught.exception), options)

    def test_plugin_builds_it(self):
        """The "memcached" store factory is registered and builds an ICacheStore."""
        self.assertIn("memcached", store_factories())
        reactor = MemoryReactorClock()
        store = build_store("memcached", {"servers": "127.0.0.1:11211"}, reactor)
        self.assertIsInstance(store, MemcachedStore)
        self.assertTrue(verifyObject(ICacheStore, store))
        self.assertEqual(len(reactor.tcpClients), 2)


# --- the real client over a MemoryReactorClock ---------------------------------------------

class HalfRandom(random.Random):
    """random() is always 0.5: back-off delays are exactly 0.75 of their nominal value."""

    def random(self):
        return 0.5


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.client = MemcachedClient(self.reactor, SERVERS, connections_per_server=2,
                                      timeout=2.0, rng=HalfRandom(), reconnect_max=5.0)

    def connect(self, index):
        """Complete the connection attempt number ``index``: (host, protocol, transport)."""
        host, _, factory, _, _ = self.reactor.tcpClients[index]
        proto = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = proto
        proto.makeConnection(transport)
        return host, proto, transport

    def connect_all(self):
        return [self.connect(i) for i in range(len(self.reactor.tcpClients))]

    def test_connects_each_server_n_times(self):
        """connections_per_server attempts per server, at once, with the timeout."""
        self.assertEqual(sorted((h, p, t) for h, p, _, t, _ in self.reactor.tcpClients),
                         sorted([(h, p, 2.0) for h, p in SERVERS] * 2))

    def test_nothing_connected_is_an_immediate_miss(self):
        """Before any connection is up: misses, False, None; nothing waits."""
        self.assertEqual(self.successResultOf(self.client.get_multi(N1, [b"a", b"b"])),
                         {b"a": None, b"b": None})
        self.assertIs(self.successResultOf(self.client.set(N1, b"a", b"v")), False)
        self.assertIsNone(self.successResultOf(self.client.incr(N2, b"a", 1)))
        self.assertEqual(self.client.stats()["servers_up"], 0)

    def asked(self, conns):
        """The one (host, protocol, transport) that was sent something."""
        [conn] = [c for c in conns if c[2].value()]
        return conn

    def test_get_multi_is_one_command_to_the_named_server(self):
        """get_multi sends one get with every name to that server; found values are
        bytes, the others None."""
        conns = self.connect_all()
        d = self.client.get_multi(N2, [b"a", b"b", b"c"])
        host, proto, transport = self.asked(conns)
        self.assertEqual((host, transport.value()), ("10.0.0.2", b"get a b c\r\n"))
        proto.dataReceived(b"VALUE b 0 3\r\nabc\r\nEND\r\n")
        self.assertEqual(self.successResultOf(d), {b"a": None, b"b": b"abc", b"c": None})

    def test_node_for_is_the_ring(self):
        """node_for is the ring over "host:port" of the servers, in their order."""
        self.assertEqual(self.client.nodes, (N1, N2))
        ring = HashRing([N1, N2])
        for name in (b"rp:%d" % i for i in range(50)):
            self.assertEqual(self.client.node_for(name), ring.node_for(name))

    def test_writes_and_counters(self):
        """set sends the expiry, incr reads the number, NOT_FOUND is False."""
        conns = self.connect_all()
        for call, request, reply, expected in (
                (lambda: self.client.set(N1, b"n", b"xy", expire=11),
                 b"set n 0 11 2\r\nxy\r\n", b"STORED\r\n", True),
                (lambda: self.client.add(N1, b"n", b"1"), b"add n 0 0 1\r\n1\r\n",
                 b"NOT_STORED\r\n", False),
                (lambda: self.client.incr(N1, b"n", 5), b"incr n 5\r\n", b"12\r\n", 12),
                (lambda: self.client.incr(N1, b"n", 5), b"incr n 5\r\n",
                 b"NOT_FOUND\r\n", False),
                (lambda: self.client.delete(N1, b"n"), b"delete n\r\n",
                 b"SERVER_ERROR oops\r\n", False)):
            for _, _, transport in conns:
                transport.clear()
            d = call()
            host, proto, transport = self.asked(conns)
            self.assertEqual((host, transport.value()), ("10.0.0.1", request))
            proto.dataReceived(reply)
            self.assertEqual(self.successResultOf(d), expected)

    def test_round_robin_over_the_pools_connections(self):
        """Successive operations on one server alternate between its connections."""
        conns = self.connect_all()
        for _ in range(4):
            self.client.delete(N2, b"n")
        counts = sorted((h, t.value().count(b"delete")) for h, _, t in conns)
        self.assertEqual(counts, [("10.0.0.1", 0), ("10.0.0.1", 0), ("10.0.0.2", 2),
                                  ("10.0.0.2", 2)])

    def test_silent_server_times_out_to_a_miss(self):
        """No answer within the timeout: the operation fires its default, the timeout is
        counted and the connection dropped (to be made again)."""
        conns = self.connect_all()
        d = self.client.get_multi(N1, [b"rp:1"])
        self.assertNoResult(d)
        _, _, transport = self.asked(conns)
        self.reactor.advance(1.99)
        self.assertNoResult(d)
        self.reactor.advance(0.01)
        self.assertEqual(self.successResultOf(d), {b"rp:1": None})
        self.assertEqual(self.client.stats()["timeouts"], 1)
        self.assertFalse(transport.connected)
        self.assertEqual(self.client.stats()["servers_up"], 2)

    def test_lost_connection_fails_its_operations_to_defaults_and_reconnects(self):
        """A connection lost with operations pending: they fire defaults; a new attempt
        follows after the back-off (0.1 s x jitter), doubling after failures, capped."""
        conns = self.connect_all()
        d = self.client.add(N1, b"n", b"v")
        _, proto, _ = self.asked(conns)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertIs(self.successResultOf(d), False)
        attempts = len(self.reactor.tcpClients)
        self.reactor.advance(0.074)
        self.assertEqual(len(self.reactor.tcpClients), attempts)
        self.reactor.advance(0.002)
        self.assertEqual(len(self.reactor.tcpClients), attempts + 1)
        delays = []
        for _ in range(8):
            _, _, factory, _, _ = self.reactor.tcpClients[-1]
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
            delays.append(self.reactor.getDelayedCalls()[-1].getTime() - self.reactor.seconds())
            self.reactor.advance(delays[-1])
        self.assertEqual([round(x, 3) for x in delays],
                         [0.15, 0.3, 0.6, 1.2, 2.4, 3.75, 3.75, 3.75])

    def test_back_off_resets_once_connected(self):
        """After a connection succeeds, the next loss retries after the first delay again."""
        conns = self.connect_all()
        conns[0][1].connectionLost(Failure(ConnectionDone()))
        for _ in range(3):
            self.reactor.advance(10)
            self.reactor.tcpClients[-1][2].clientConnectionFailed(None, Failure(ConnectionDone()))
        self.reactor.advance(10)
        _, proto, _ = self.connect(len(self.reactor.tcpClients) - 1)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertAlmostEqual(self.reactor.getDelayedCalls()[-1].getTime()
                               - self.reactor.seconds(), 0.075)

    def test_close_drops_connections_and_stops_reconnecting(self):
        """close fires once every connection is lost; no attempt is made afterwards."""
        conns = self.connect_all()
        conns[0][1].connectionLost(Failure(ConnectionDone()))  # a retry is now scheduled
        slow = conns[1][2]
        slow.loseConnection = lambda: setattr(slow, "disconnecting", True)  # not yet lost
        d = self.client.close()
        self.assertNoResult(d)
        self.assertTrue(slow.disconnecting)
        conns[1][1].connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(any(t.connected for _, _, t in conns[2:]))
        attempts = len(self.reactor.tcpClients)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.tcpClients), attempts)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.successResultOf(self.client.close()))
