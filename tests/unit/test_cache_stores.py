"""The built-in cache stores: both pass the ICacheStore contract; the memory store answers
synchronously with the very objects stored; the disk store survives restarts, never serves
a torn or corrupt file, and cleans up after crashes."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.cache.entry import VariantIndex
from revproxy.cache.stores import disk as disk_module
from revproxy.cache.stores import diskfiles, purgelog
from revproxy.cache.stores.disk import DiskStore
from revproxy.cache.stores.memory import MemoryStore
from revproxy.testing import (
    CacheStoreContractMixin, QueuedIO, StreamingCacheStoreContractMixin, sample_entry)


def record_files(root):
    """Every file under ``root``, relative paths, sorted."""
    found = []
    for directory, _, names in os.walk(root):
        found.extend(os.path.relpath(os.path.join(directory, n), root) for n in names)
    return sorted(found)


class MemoryStoreContractTests(CacheStoreContractMixin, unittest.TestCase):
    def make_store(self, max_bytes, max_object):
        return MemoryStore(max_bytes, max_object, clock=self.clock)


class DiskStoreContractTests(StreamingCacheStoreContractMixin, unittest.TestCase):
    def make_store(self, max_bytes, max_object):
        return DiskStore(self.mktemp(), max_bytes, max_object, clock=self.clock,
                         stream_above=self.STREAMED)


class ThreadedTieredDiskStoreContractTests(StreamingCacheStoreContractMixin, unittest.TestCase):
    """The disk store as deployed (I/O off the reactor thread, a memory tier in front), its
    I/O queued by a fake and run only when a test waits for a result."""

    def make_store(self, max_bytes, max_object):
        self.io = QueuedIO()
        return DiskStore(self.mktemp(), max_bytes, max_object, clock=self.clock,
                         memory_bytes=max_bytes, io=self.io, stream_above=self.STREAMED)

    def resolve(self, d):
        while not d.called and self.io.queue:
            self.io.run_next()
        return self.successResultOf(d)


class MemoryStoreTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.store = MemoryStore(10000, 5000, clock=self.clock)

    def test_hit_is_synchronous_and_the_same_object(self):
        """get on a stored key returns an already-fired Deferred with the object put."""
        entry = sample_entry()
        self.store.put(b"k", entry, 60.0)
        d = self.store.get(b"k")
        self.assertTrue(d.called)
        self.assertIs(self.successResultOf(d), entry)

    def test_size_accounting_uses_value_size(self):
        """bytes is the sum of the values' size; delete gives it back."""
        one, two = sample_entry(b"a", body=b"x" * 100), sample_entry(b"b")
        self.store.put(b"a", one, 60.0)
        self.store.put(b"b", two, 60.0)
        self.assertEqual(self.store.stats()["bytes"], one.size + two.size)
        self.store.delete(b"a")
        self.assertEqual(self.store.stats()["bytes"], two.size)

    def test_sweep_drops_expired_values(self):
        """sweep removes exactly the values past their ttl and counts them."""
        self.store.put(b"a", sample_entry(b"a"), 5.0)
        self.store.put(b"b", sample_entry(b"b"), 50.0)
        self.clock.advance(10.0)
        self.assertEqual(self.store.sweep(), 1)
        self.assertEqual(self.store.stats()["entries"], 1)
        self.assertEqual(self.store.stats()["expirations"], 1)

    def test_bounds_are_checked(self):
        """A max_object larger than max_bytes, or a zero bound, is a ValueError."""
        self.assertRaises(ValueError, MemoryStore, 100, 200)
        self.assertRaises(ValueError, MemoryStore, 0, 0)

    def test_from_options(self):
        """from_options reads sizes as numbers or "64k" strings; unknown keys and bad
        sizes are ValueErrors naming the option."""
        store = MemoryStore.from_options({"max_bytes": "1m", "max_object": 4096}, self.clock)
        self.assertEqual(store.stats()["max_bytes"], 1024 * 1024)
        self.assertEqual(store.max_object, 4096)
        error = self.assertRaises(ValueError, MemoryStore.from_options, {"size": 1}, self.clock)
        self.assertIn("'size'", str(error))
        error = self.assertRaises(ValueError, MemoryStore.from_options,
                                  {"max_bytes": "lots"}, self.clock)
        self.assertIn("'max_bytes'", str(error))
        self.assertRaises(ValueError, MemoryStore.from_options, {"max_bytes": -1}, self.clock)


class DiskStoreTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.path = os.path.abspath(self.mktemp())

    def open_store(self, max_bytes=100000, max_object=50000, **kwargs):
        store = DiskStore(self.path, max_bytes, max_object, clock=self.clock, **kwargs)
        self.addCleanup(store.close)
        return store

    def file_of(self, key):
        return diskfiles.file_path(self.path, diskfiles.file_name(key))

    def test_files_are_named_by_key_hash_in_fanout_dirs(self):
        """A value lives in <root>/<h[:2]>/<h>, h the key's sha256 hex digest."""
        self.open_store().put(b"k", sample_entry(b"k"), 60.0)
        name = diskfiles.file_name(b"k")
        self.assertEqual(record_files(self.path), [os.path.join(name[:2], name)])
        self.assertEqual(len(name), 64)

    def test_restart_sees_entries_tags_ttl_and_soft_purge(self):
        """A second store on the same directory serves the first one's values, keeps their
        expiry and tags, and remembers soft purges."""
        first = self.open_store()
        entry = sample_entry(b"a", tags=(b"red",))
        first.put(b"a", entry, 100.0, tags=(b"red",))
        first.put(b"b", sample_entry(b"b"), 10.0)
        first.put(b"c", sample_entry(b"c"), 100.0)
        first.purge(prefix=b"c", soft=True)
        self.successResultOf(first.close())
        self.clock.advance(50.0)
        second = self.open_store()
        self.assertEqual(self.successResultOf(second.get(b"a")), entry)
        self.assertIsNone(self.successResultOf(second.get(b"b")))
        self.assertTrue(self.successResultOf(second.get(b"c")).stale)
        self.assertEqual(self.successResultOf(second.purge(tag=b"red")), 1)
        self.assertIsNone(self.successResultOf(second.get(b"a")))

    def test_restart_deletes_expired_files(self):
        """Files past their ttl at start-up are deleted, not indexed."""
        first = self.open_store()
        first.put(b"old", sample_entry(b"old"), 10.0)
        first.put(b"new", sample_entry(b"new"), 100.0)
        self.clock.advance(20.0)
        second = self.open_store()
        self.assertEqual(second.stats()["entries"], 1)
        self.assertFalse(os.path.exists(self.file_of(b"old")))

    def test_restart_evicts_least_recently_used_past_a_smaller_bound(self):
        """Restarted with a smaller max_bytes, the store keeps the most recently used files."""
        first = self.open_store()
        for i, key in enumerate((b"k0", b"k1", b"k2")):
            first.put(key, sample_entry(key, body=b"x" * 20000), 100.0)
            os.utime(self.file_of(key), (1000 + i, 1000 + i))
        second = self.open_store(max_bytes=45000, max_object=30000)
        self.assertEqual(second.stats()["entries"], 2)
        self.assertIsNone(self.successResultOf(second.get(b"k0")))
        self.assertFalse(os.path.exists(self.file_of(b"k0")))
        self.assertIsNotNone(self.successResultOf(second.get(b"k2")))

    def test_truncated_file_is_a_miss_and_removed(self):
        """A record file cut short (behind the store's back) is a miss and is deleted."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k", body=b"y" * 1000), 60.0)
        path = self.file_of(b"k")
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 10)
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertFalse(os.path.exists(path))
        self.assertEqual(store.stats()["errors"], 1)
        self.assertEqual(store.stats()["entries"], 0)

    def test_corrupt_value_is_a_miss_and_removed(self):
        """A record whose value bytes do not parse is a miss and is deleted."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        path = self.file_of(b"k")
        data = bytearray(open(path, "rb").read())
        value_start = diskfiles.decode_head(bytes(data)).value_offset
        data[value_start:value_start + 3] = b"BAD"
        with open(path, "wb") as f:
            f.write(bytes(data))
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertFalse(os.path.exists(path))

    def test_corrupt_and_truncated_files_removed_at_startup(self):
        """Files that are not whole records, or hold another key than their name says,
        are deleted by the start-up scan; unrelated files are left alone."""
        first = self.open_store()
        for key in (b"a", b"b", b"c"):
            first.put(key, sample_entry(key), 60.0)
        with open(self.file_of(b"a"), "r+b") as f:
            f.truncate(20)
        os.replace(self.file_of(b"b"), self.file_of(b"c"))  # c's name, b's record
        with open(os.path.join(self.path, "README"), "w") as f:
            f.write("not ours")
        second = self.open_store()
        self.assertEqual(second.stats()["entries"], 0)
        self.assertEqual(record_files(self.path), ["README"])

    def test_no_temp_files_left_after_puts(self):
        """After puts, overwrites and deletes only record files remain."""
        store = self.open_store()
        for i in range(20):
            key = b"k%d" % (i % 7)
            store.put(key, sample_entry(key, body=b"z" * i), 60.0)
        store.delete(b"k0")
        names = [os.path.basename(p) for p in record_files(self.path)]
        self.assertEqual(len(names), 6)
        self.assertFalse([n for n in names if n.startswith(diskfiles.TEMP_PREFIX)])

    def test_partial_temp_file_ignored_and_cleaned_at_startup(self):
        """A half-written temp file (a crash mid-put) is never served and is removed at
        start-up; the previous complete record stays served."""
        first = self.open_store()
        entry = sample_entry(b"k", body=b"complete")
        first.put(b"k", entry, 60.0)
        name = diskfiles.file_name(b"k")
        temp = os.path.join(self.path, name[:2], diskfiles.TEMP_PREFIX + name + ".1.1")
        with open(temp, "wb") as f:
            f.write(sample_entry(b"k", body=b"newer").to_bytes()[:15])
        self.assertEqual(self.successResultOf(first.get(b"k")), entry)
        second = self.open_store()
        self.assertFalse(os.path.exists(temp))
        self.assertEqual(self.successResultOf(second.get(b"k")), entry)

    def test_failed_write_leaves_no_temp_file_and_no_value(self):
        """When the rename fails put fires False, the temp file is gone and the key's old
        value is removed."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)

        def failing_replace(source, target):
            raise OSError(28, "No space left on device")

        self.patch(diskfiles.os, "replace", failing_replace)
        self.assertIs(self.successResultOf(store.put(b"k", sample_entry(b"k"), 60.0)), False)
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertEqual(record_files(self.path), [])
        self.assertEqual(store.stats()["errors"], 1)

    def test_miss_costs_no_file_access(self):
        """A key the index does not know is a miss without opening any file."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)

        def no_open(*args, **kwargs):
            raise AssertionError("file opened on a miss")

        for module in (disk_module, diskfiles):  # shadows the builtin for these modules
            module.open = no_open
            self.addCleanup(delattr, module, "open")
        self.assertIsNone(self.successResultOf(store.get(b"other")))

    def test_file_deleted_behind_the_store_is_a_miss(self):
        """A record file removed by someone else is a miss, and the key is forgotten."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        os.unlink(self.file_of(b"k"))
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertEqual(store.stats()["entries"], 0)
        self.assertEqual(store.stats()["errors"], 0)

    def test_soft_purge_rewrites_no_record_file(self):
        """A soft purge leaves the record file untouched (bytes and time): it flags the
        index and appends one line to the journal."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        path = self.file_of(b"k")
        before = (open(path, "rb").read(), os.stat(path).st_mtime_ns)
        self.assertEqual(self.successResultOf(store.purge(prefix=b"k", soft=True)), 1)
        self.assertEqual((open(path, "rb").read(), os.stat(path).st_mtime_ns), before)
        self.assertTrue(self.successResultOf(store.get(b"k")).stale)
        journal = open(os.path.join(self.path, purgelog.JOURNAL_NAME), "rb").read()
        self.assertEqual(journal.count(b"\n"), 1)

    def test_hard_purge_and_eviction_delete_files(self):
        """Purged and evicted values leave no file behind."""
        store = self.open_store(max_bytes=45000, max_object=30000)
        for key in (b"a1", b"a2", b"b1"):
            store.put(key, sample_entry(key, body=b"x" * 20000), 60.0)
        self.assertEqual(len(record_files(self.path)), 2)
        store.purge(prefix=b"a")
        self.assertEqual(len(record_files(self.path)), 1)

    def test_variant_index_persists(self):
        """A VariantIndex is stored in a file and read back after a restart."""
        index = VariantIndex(b"GET /", (b"accept-encoding",), (b"GET / gzip",))
        self.open_store().put(b"GET /", index, 60.0)
        self.assertEqual(self.successResultOf(self.open_store().get(b"GET /")), index)

    def test_sweep_deletes_expired_files(self):
        """sweep deletes the files past their ttl."""
        store = self.open_store()
        store.put(b"a", sample_entry(b"a"), 5.0)
        store.put(b"b", sample_entry(b"b"), 50.0)
        self.clock.advance(10.0)
        self.assertEqual(store.sweep(), 1)
        self.assertFalse(os.path.exists(self.file_of(b"a")))

    def test_fsync_option_syncs_each_put(self):
        """With fsync=True each put syncs the file and its directory."""
        synced = []
        real_fsync = os.fsync
        self.patch(diskfiles.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
        store = self.open_store(fsync=True)
        store.put(b"k", sample_entry(b"k"), 60.0)
        self.assertEqual(len(synced), 2)
        self.assertIsNotNone(self.successResultOf(store.get(b"k")))

    def test_from_options(self):
        """from_options needs a path, reads sizes and fsync; bad values are ValueErrors."""
        store = DiskStore.from_options(
            {"path": self.path, "max_bytes": "2m", "max_object": "64k", "fsync": True},
            self.clock)
        self.assertEqual((store.max_object, store.fsync), (65536, True))
        self.assertRaises(ValueError, DiskStore.from_options, {}, self.clock)
        self.assertRaises(ValueError, DiskStore.from_options,
                          {"path": self.path, "fsync": "yes"}, self.clock)
        self.assertRaises(ValueError, DiskStore.from_options,
                          {"path": self.path, "max_object": "2m", "max_bytes": "1m"}, self.clock)
        with open(self.path + "-file", "w"):
            pass
        error = self.assertRaises(ValueError, DiskStore.from_options,
                                  {"path": os.path.join(self.path + "-file", "sub")}, self.clock)
        self.assertIn("'path'", str(error))

    def test_from_options_memory_tier_and_threads(self):
        """memory_bytes (default 32 MiB, 0 for none) and threads (0..64) are read; with a
        task.Clock (no threads) the I/O runs inline; bad values name the option."""
        from revproxy.cache.stores.diskio import InlineIO

        store = DiskStore.from_options({"path": self.path}, self.clock)
        self.addCleanup(store.close)
        self.assertEqual(store.stats()["memory_bytes"], 0)
        self.assertEqual(store._memory.max_bytes, 32 * 1024 * 1024)
        self.assertIsInstance(store._io, InlineIO)
        off = DiskStore.from_options({"path": self.path, "memory_bytes": 0, "threads": 0},
                                     self.clock)
        self.assertEqual(off._memory.max_bytes, 0)
        for bad in ({"threads": -1}, {"threads": 65}, {"threads": "4"}, {"threads": True},
                    {"memory_bytes": "lots"}):
            options = dict(bad, path=self.path)
            error = self.assertRaises(ValueError, DiskStore.from_options, options, self.clock)
            self.assertIn(repr(sorted(bad)[0]), str(error))
