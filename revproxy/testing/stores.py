"""A sample entry and the contract-test mixin for ``ICacheStore`` plugins."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from revproxy.cache.entry import CacheEntry, VariantIndex
from revproxy.interfaces import ICacheStore, IStreamingCacheStore


def sample_entry(key=b"GET example.test/", body=b"hello", headers=None, tags=(), status=200,
                 when=0.0):
    """A ``CacheEntry`` for tests: ``key``, ``status``, ``body``, ``tags`` as given, headers
    (default: a Content-Type and two Set-Cookie lines, a repeated name), times ``when``."""
    if headers is None:
        headers = [(b"content-type", b"text/plain"), (b"set-cookie", b"a=1"),
                   (b"set-cookie", b"b=2")]
    return CacheEntry(key, status, b"OK", list(headers), body, when, when, when, tags)


class QueuedIO:
    """A fake I/O runner for stores that do file I/O in threads (``DiskStore(io=...)``):
    ``run`` queues the call and returns a Deferred that fires only when the test runs it
    (``run_next``, ``run_all``), in the reactor thread like the real pool's results. Tests
    thus see every interleaving they ask for, deterministically."""

    def __init__(self):
        self.queue = []  # (f, args, Deferred) not run yet, oldest first
        self.ran = []  # the functions run, in order
        self.stopped = False

    def run(self, f, *args):
        d = defer.Deferred()
        self.queue.append((f, args, d))
        return d

    def run_next(self, index=0):
        """Run the queued call at ``index`` (default the oldest) and fire its Deferred."""
        f, args, d = self.queue.pop(index)
        self.ran.append(f)
        defer.execute(f, *args).chainDeferred(d)

    def run_all(self):
        """Run queued calls (and those they queue) until none is left; how many ran."""
        count = 0
        while self.queue:
            self.run_next()
            count += 1
        return count

    def stop(self):
        self.stopped = True


class CacheStoreContractMixin:
    """The ``ICacheStore`` contract, as tests. Mix into a ``twisted.trial.unittest.TestCase``
    and define ``make_store(self, max_bytes, max_object)`` returning a fresh, empty store
    that reads the time from ``self.clock`` (a ``task.Clock`` the mixin sets before calling)
    and holds at most ``max_bytes``, refusing values over ``max_object``.

    The bound tests assume a store counts a value as at least its body length and at most
    its body plus 4 KiB (for a small head). A store whose Deferreds fire later (network)
    overrides ``resolve(d)`` to drive its fake I/O until ``d`` fires.
    """

    MAX_BYTES = 100000
    MAX_OBJECT = 50000

    def make_store(self, max_bytes, max_object):
        raise NotImplementedError("define make_store(max_bytes, max_object) using self.clock")

    def resolve(self, d):
        """The result of the store's Deferred ``d``."""
        return self.successResultOf(d)

    def new_store(self, max_bytes=None, max_object=None):
        """A store from ``make_store`` (bounds default to MAX_BYTES, MAX_OBJECT), closed at
        the end of the test."""
        if getattr(self, "clock", None) is None:
            self.clock = Clock()
        store = self.make_store(max_bytes or self.MAX_BYTES, max_object or self.MAX_OBJECT)
        self.addCleanup(lambda: self.resolve(store.close()))
        return store

    def put(self, store, key, value=None, ttl=3600.0, tags=()):
        """``store.put``'s result; ``value`` defaults to ``sample_entry(key)``."""
        value = sample_entry(key) if value is None else value
        return self.resolve(store.put(key, value, ttl, tags))

    def get(self, store, key):
        return self.resolve(store.get(key))

    def body_bytes(self, body):
        """Every byte of a body: bytes as they are, a body source read through ``read``."""
        if isinstance(body, bytes):
            return body
        out, pos = [], 0
        while pos < len(body):
            out.append(self.resolve(body.read(pos, min(8192, len(body) - pos))))
            pos += len(out[-1])
        return b"".join(out)

    def test_provides_icachestore(self):
        """The store provides ICacheStore (verifyObject) and has a non-empty str name."""
        store = self.new_store()
        self.assertTrue(verifyObject(ICacheStore, store))
        self.assertIsInstance(store.name, str)
        self.assertTrue(store.name)

    def test_round_trip_of_bodies_and_repeated_headers(self):
        """Entries with bodies of 0 B to 40 KB, repeated header names and tags come back
        equal, header order kept."""
        store = self.new_store()
        headers = [(b"set-cookie", b"a=1"), (b"x-b", b"2"), (b"set-cookie", b"c=3; Path=/"),
                   (b"x-b", b"")]
        for size in (0, 1, 1000, 40000):
            key = b"GET example.test/" + str(size).encode()
            entry = sample_entry(key, body=bytes(range(256)) * (size // 256) + b"z" * (size % 256),
                                 headers=headers, tags=(b"t1", b"t2"), when=12.5)
            self.assertIs(self.put(store, key, entry, tags=entry.tags), True)
            found = self.get(store, key)
            # (a streaming store may answer the body as a source read from its file)
            self.assertEqual(found.replace(body=self.body_bytes(found.body)), entry)
            self.assertEqual(found.headers, headers)
            self.assertEqual(len(found.body), size)

    def test_variant_index_round_trip(self):
        """A VariantIndex comes back equal."""
        store = self.new_store()
        index = VariantIndex(b"GET a/", (b"accept-encoding", b"accept-language"),
                             (b"GET a/ gzip en", b"GET a/ br fr"))
        self.assertIs(self.put(store, b"GET a/", index), True)
        self.assertEqual(self.get(store, b"GET a/"), index)

    def test_missing_key_is_none(self):
        """A key never stored gets None."""
        store = self.new_store()
        self.put(store, b"k1")
        self.assertIsNone(self.get(store, b"k2"))
        self.assertIsNone(self.get(store, b""))

    def test_put_overwrites(self):
        """A second put under a key replaces the first value."""
        store = self.new_store()
        self.put(store, b"k", sample_entry(b"k", body=b"old"))
        self.put(store, b"k", sample_entry(b"k", body=b"new", status=203))
        found = self.get(store, b"k")
        self.assertEqual((found.body, found.status), (b"new", 203))
        self.assertEqual(store.stats()["entries"], 1)

    def test_delete_removes_only_that_key(self):
        """delete fires with None, removes its key, keeps the others; deleting again or a
        missing key is harmless."""
        store = self.new_store()
        self.put(store, b"k1")
        self.put(store, b"k2")
        self.assertIsNone(self.resolve(store.delete(b"k1")))
        self.assertIsNone(self.resolve(store.delete(b"k1")))
        self.assertIsNone(self.resolve(store.delete(b"never")))
        self.assertIsNone(self.get(store, b"k1"))
        self.assertEqual(self.get(store, b"k2").key, b"k2")

    def test_value_expires_after_ttl(self):
        """A value is there until ttl seconds have passed, and gone from then on."""
        store = self.new_store()
        self.put(store, b"short", ttl=10.0)
        self.put(store, b"long", ttl=100.0)
        self.clock.advance(9.9)
        self.assertIsNotNone(self.get(store, b"short"))
        self.clock.advance(0.1)
        self.assertIsNone(self.get(store, b"short"))
        self.assertIsNotNone(self.get(store, b"long"))

    def test_non_positive_ttl_is_refused(self):
        """put with ttl 0 or negative fires False, stores nothing and removes the old value."""
        store = self.new_store()
        self.put(store, b"k")
        self.assertIs(self.put(store, b"k", ttl=0.0), False)
        self.assertIsNone(self.get(store, b"k"))
        self.assertIs(self.put(store, b"k", ttl=-5.0), False)
        self.assertIsNone(self.get(store, b"k"))

    def fill_for_purge(self, store):
        for key, tags in ((b"GET a.test/1", (b"red",)), (b"GET a.test/2", (b"red", b"blue")),
                          (b"GET b.test/1", (b"blue",)), (b"GET b.test/2", ())):
            self.put(store, key, sample_entry(key, tags=tags), tags=tags)

    def present(self, store):
        keys = (b"GET a.test/1", b"GET a.test/2", b"GET b.test/1", b"GET b.test/2")
        return {k: self.get(store, k) for k in keys if self.get(store, k) is not None}

    def test_hard_purge_by_prefix(self):
        """purge(prefix) removes the keys starting with it and counts them."""
        store = self.new_store()
        self.fill_for_purge(store)
        count = self.resolve(store.purge(prefix=b"GET a.test/"))
        self.assertIn(count, (2, -1))
        self.assertEqual(sorted(self.present(store)), [b"GET b.test/1", b"GET b.test/2"])

    def test_hard_purge_by_tag(self):
        """purge(tag) removes the values put with that tag and counts them."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge(tag=b"blue")), (2, -1))
        self.assertEqual(sorted(self.present(store)), [b"GET a.test/1", b"GET b.test/2"])

    def test_hard_purge_by_prefix_and_tag(self):
        """purge(prefix, tag) removes only values matching both."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge(prefix=b"GET a.", tag=b"blue")), (1, -1))
        self.assertEqual(sorted(self.present(store)),
                         [b"GET a.test/1", b"GET b.test/1", b"GET b.test/2"])

    def test_purge_everything(self):
        """purge() with no condition removes every value."""
        store = self.new_store()
        self.fill_for_purge(store)
        self.assertIn(self.resolve(store.purge()), (4, -1))
        self.assertEqual(self.present(store), {})

    def test_soft_purge_marks_entries_stale(self):
        """purge(soft=True) by prefix or tag keeps the entries but returns them with
        stale=True, otherwise equal; the others stay fresh."""
        store = self.new_store()
        self.fill_for_purge(store)
        before = self.present(store)
        self.assertIn(self.resolve(store.purge(prefix=b"GET a.test/1", soft=True)), (1, -1))
        self.assertIn(self.resolve(store.purge(tag=b"blue", soft=True)), (2, -1))
        after = self.present(store)
        self.assertEqual(sorted(after), sorted(before))
        for key, entry in after.items():
            self.assertEqual(entry.stale, key != b"GET b.test/2", key)
            self.assertEqual(entry.replace(stale=False), before[key])

    def test_soft_purge_leaves_variant_index(self):
        """A soft purge leaves a VariantIndex as it was."""
        store = self.new_store()
        index = VariantIndex(b"GET a/", (b"accept",), (b"GET a/ x",))
        self.put(store, b"GET a/", index)
        self.resolve(store.purge(prefix=b"GET a/", soft=True))
        self.assertEqual(self.get(store, b"GET a/"), index)

    def test_oversize_value_is_refused(self):
        """A value over max_object: put fires False, and the key's old value is gone."""
        store = self.new_store()
        self.put(store, b"k")
        big = sample_entry(b"k", body=b"x" * (self.MAX_OBJECT + 1))
        self.assertIs(self.put(store, b"k", big), False)
        self.assertIsNone(self.get(store, b"k"))
        self.assertEqual(store.stats()["entries"], 0)

    def test_lru_eviction_keeps_the_most_recently_read(self):
        """Past max_bytes the least recently used value goes: a value read since survives
        and the byte count stays within the bound."""
        store = self.new_store()
        body = b"b" * (self.MAX_BYTES // 5)
        for i in range(4):
            key = b"key-%d" % i
            self.assertIs(self.put(store, key, sample_entry(key, body=body)), True)
        self.assertIsNotNone(self.get(store, b"key-0"))
        self.put(store, b"key-4", sample_entry(b"key-4", body=body))
        self.assertIsNone(self.get(store, b"key-1"))
        for key in (b"key-0", b"key-2", b"key-3", b"key-4"):
            self.assertIsNotNone(self.get(store, key), key)
        stats = store.stats()
        self.assertEqual((stats["entries"], stats["evictions"]), (4, 1))
        self.assertLessEqual(stats["bytes"], self.MAX_BYTES)

    def test_stats_count_hits_misses_entries_and_bytes(self):
        """stats() counts hits, misses, entries and bytes held."""
        store = self.new_store()
        empty = store.stats()
        self.assertEqual({k: empty[k] for k in ("entries", "bytes", "hits", "misses",
                                                 "evictions")},
                         {"entries": 0, "bytes": 0, "hits": 0, "misses": 0, "evictions": 0})
        self.put(store, b"k1", sample_entry(b"k1", body=b"x" * 1000))
        self.put(store, b"k2")
        self.get(store, b"k1")
        self.get(store, b"k1")
        self.get(store, b"nope")
        stats = store.stats()
        self.assertEqual((stats["hits"], stats["misses"], stats["entries"]), (2, 1, 2))
        self.assertGreaterEqual(stats["bytes"], 1000)

    def test_put_after_soft_purge_is_fresh(self):
        """A value put again after a soft purge comes back not stale."""
        store = self.new_store()
        self.put(store, b"k")
        self.resolve(store.purge(prefix=b"k", soft=True))
        self.assertTrue(self.get(store, b"k").stale)
        self.put(store, b"k", sample_entry(b"k", body=b"again"))
        found = self.get(store, b"k")
        self.assertEqual((found.body, found.stale), (b"again", False))

    def test_operations_after_close_do_nothing(self):
        """After close every method fires with its "nothing" value and none raises."""
        store = self.new_store()
        self.put(store, b"k")
        self.assertIsNone(self.resolve(store.close()))
        self.assertIsNone(self.get(store, b"k"))
        self.assertIs(self.put(store, b"k2"), False)
        self.assertIsNone(self.resolve(store.delete(b"k")))
        self.assertIn(self.resolve(store.purge(prefix=b"k")), (0, -1))
        self.assertIn(self.resolve(store.purge(tag=b"t", soft=True)), (0, -1))
        self.assertIsInstance(store.stats(), dict)
        self.assertIsNone(self.resolve(store.close()))


class StreamingCacheStoreContractMixin(CacheStoreContractMixin):
    """The ``IStreamingCacheStore`` contract on top of ``ICacheStore``'s: ``make_store``
    returns a store that keeps bodies over ``STREAMED`` bytes in files (so the tests see
    ``FileBody`` values), with ``MAX_OBJECT`` as its own bound."""

    STREAMED = 16384

    def filled(self, store, data, pieces=3):
        """A body written through ``begin_body`` in ``pieces``, ended: its FileBody."""
        fill = store.begin_body(len(data))
        step = -(-len(data) // pieces)
        for i in range(0, len(data), step):
            fill.write(data[i:i + step])
        return self.resolve(fill.end())

    def test_provides_istreamingcachestore(self):
        """The store provides IStreamingCacheStore, with an int max_object."""
        store = self.new_store()
        self.assertTrue(verifyObject(IStreamingCacheStore, store))
        self.assertIsInstance(store.max_object, int)

    def test_filled_body_round_trip(self):
        """A body written in pieces through begin_body and stored comes back whole."""
        store = self.new_store()
        data = bytes(range(256)) * 100
        body = self.filled(store, data)
        self.assertEqual(len(body), len(data))
        self.assertTrue(self.put(store, b"k", sample_entry(b"k", body)))
        self.assertEqual(self.body_bytes(self.get(store, b"k").body), data)

    def test_fill_readable_behind_the_writer(self):
        """Bytes written to a fill are readable before it ends; ``length`` is None until
        ``end``."""
        store = self.new_store()
        fill = store.begin_body()
        fill.write(b"0123456789")
        self.assertIsNone(fill.length)
        body = self.resolve(fill.end())
        self.assertEqual(fill.length, 10)
        self.assertEqual(self.resolve(fill.read(2, 3)), b"234")
        self.assertEqual(self.body_bytes(body), b"0123456789")

    def test_fill_over_max_object_is_refused(self):
        """begin_body with an announced length over max_object gives None."""
        store = self.new_store()
        self.assertIsNone(store.begin_body(store.max_object + 1))

    def test_restoring_an_entry_read_from_a_file_keeps_its_body(self):
        """An entry got from the store, changed and put back (a 304 refresh, a soft purge)
        keeps every byte, and the body first got stays readable."""
        store = self.new_store()
        data = b"z" * (self.STREAMED * 2)
        self.assertTrue(self.put(store, b"k", sample_entry(b"k", data)))
        first = self.get(store, b"k")
        self.assertTrue(self.put(store, b"k", first.replace(stale=True)))
        again = self.get(store, b"k")
        self.assertEqual((again.stale, self.body_bytes(again.body)), (True, data))
        self.assertEqual(self.body_bytes(first.body), data)

    def test_begin_body_after_close_is_none(self):
        """A closed store starts no fill."""
        store = self.new_store()
        self.resolve(store.close())
        self.assertIsNone(store.begin_body())
