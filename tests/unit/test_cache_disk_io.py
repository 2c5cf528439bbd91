"""The disk store off the reactor thread: file I/O goes through the injected runner (a
queued fake here), writes are visible at once and ordered per file, outdated reads are
misses, the memory tier serves hot values without a file, soft purges are index-only and
survive a restart through the journal."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.cache.stores import diskfiles, purgelog
from revproxy.cache.stores.disk import DiskStore
from revproxy.cache.stores.diskio import FileQueue, InlineIO
from revproxy.testing import QueuedIO, sample_entry


class QueuedDiskStoreTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.path = os.path.abspath(self.mktemp())
        self.io = QueuedIO()

    def open_store(self, memory_bytes=0, io=None):
        store = DiskStore(self.path, 100000, 50000, clock=self.clock,
                          memory_bytes=memory_bytes, io=io or self.io)
        self.addCleanup(store.close)
        return store

    def file_of(self, key):
        return diskfiles.file_path(self.path, diskfiles.file_name(key))

    def stored(self, store, key, body=b"hello"):
        d = store.put(key, sample_entry(key, body=body), 60.0)
        self.io.run_all()
        self.assertIs(self.successResultOf(d), True)

    def test_put_is_visible_at_once_and_fires_when_written(self):
        """put indexes the value at once (a get answers from memory, no file read) but
        fires True only after the runner wrote the file."""
        store = self.open_store()
        d = store.put(b"k", sample_entry(b"k", body=b"new"), 60.0)
        self.assertNoResult(d)
        self.assertFalse(os.path.exists(self.file_of(b"k")))
        self.assertEqual(self.successResultOf(store.get(b"k")).body, b"new")
        self.assertEqual(store.stats()["writes_pending"], 1)
        self.assertEqual([call[0] for call in self.io.queue], [diskfiles.write_atomically])
        self.io.run_next()
        self.assertIs(self.successResultOf(d), True)
        self.assertTrue(os.path.exists(self.file_of(b"k")))
        self.assertEqual(store.stats()["writes_pending"], 0)

    def test_disk_read_runs_in_the_runner(self):
        """A hit that needs the file waits for the runner: nothing is read in the caller."""
        self.stored(self.open_store(), b"k")
        store = self.open_store()  # a restart: nothing in memory
        d = store.get(b"k")
        self.assertNoResult(d)
        self.assertEqual([call[0] for call in self.io.queue], [diskfiles.read_record])
        self.io.run_next()
        self.assertEqual(self.successResultOf(d).body, b"hello")

    def test_writes_to_one_file_run_in_call_order(self):
        """A second put of a key waits for the first write to end before its own starts;
        the file ends up holding the second value."""
        store = self.open_store()
        first = store.put(b"k", sample_entry(b"k", body=b"one"), 60.0)
        second = store.put(b"k", sample_entry(b"k", body=b"two"), 60.0)
        self.assertEqual(len(self.io.queue), 1)
        self.io.run_all()
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)),
                         (True, True))
        head, value = diskfiles.read_record(self.file_of(b"k"), b"k")
        self.assertEqual(value.body, b"two")

    def test_delete_during_a_write_leaves_no_file(self):
        """A delete issued while the put's write is queued wins: no file, a miss, even
        after a restart."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        store.delete(b"k")
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.io.run_all()
        self.assertFalse(os.path.exists(self.file_of(b"k")))
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertEqual(self.open_store(io=InlineIO()).stats()["entries"], 0)

    def test_read_outdated_by_a_delete_is_a_miss(self):
        """A read that was in flight when the key was deleted answers None."""
        self.stored(self.open_store(), b"k")
        store = self.open_store()
        d = store.get(b"k")
        store.delete(b"k")
        self.io.run_all()
        self.assertIsNone(self.successResultOf(d))

    def test_failed_write_drops_the_key_and_the_old_file(self):
        """When the write fails, put fires False, get misses, the old file is gone."""
        store = self.open_store()
        self.stored(store, b"k", b"old")

        def failing_replace(source, target):
            raise OSError(28, "No space left on device")

        self.patch(diskfiles.os, "replace", failing_replace)
        d = store.put(b"k", sample_entry(b"k", body=b"new"), 60.0)
        self.io.run_all()
        self.assertIs(self.successResultOf(d), False)
        self.assertIsNone(self.successResultOf(store.get(b"k")))
        self.assertFalse(os.path.exists(self.file_of(b"k")))
        self.assertEqual(store.stats()["errors"], 1)

    def test_close_waits_for_writes_in_progress(self):
        """close fires only after the queued writes ended, then stops the runner; the
        value written is there for the next store."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        closed = store.close()
        self.assertNoResult(closed)
        self.io.run_all()
        self.successResultOf(closed)
        self.assertTrue(self.io.stopped)
        reopened = self.open_store(io=InlineIO())
        self.assertEqual(self.successResultOf(reopened.get(b"k")).body, b"hello")

    def test_soft_purge_during_a_write_survives_a_restart(self):
        """A soft purge that overtakes its entry's write flags the file once written: the
        next store serves the entry stale."""
        store = self.open_store()
        store.put(b"k", sample_entry(b"k"), 60.0)
        store.purge(prefix=b"k", soft=True)
        self.io.run_all()
        self.assertTrue(diskfiles.read_head(self.file_of(b"k"),
                                            os.path.getsize(self.file_of(b"k"))).stale)
        self.assertTrue(self.successResultOf(self.open_store(io=InlineIO()).get(b"k")).stale)


class MemoryTierTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.path = os.path.abspath(self.mktemp())

    def open_store(self, memory_bytes):
        store = DiskStore(self.path, 200000, 50000, clock=self.clock,
                          memory_bytes=memory_bytes)
        self.addCleanup(store.close)
        return store

    def count_reads(self):
        """A list that gets one item per record file read from now on."""
        reads = []
        real = diskfiles.read_record
        self.patch(diskfiles, "read_record", lambda *a: reads.append(a) or real(*a))
        return reads

    def test_hot_value_served_without_the_file(self):
        """With a memory tier, a value read once (or just put) is served without opening
        its file, and counted as a memory hit."""
        store = self.open_store(memory_bytes=100000)
        store.put(b"k", sample_entry(b"k"), 60.0)
        reads = self.count_reads()
        self.assertEqual(self.successResultOf(store.get(b"k")).body, b"hello")
        self.assertEqual((len(reads), store.stats()["memory_hits"]), (0, 1))
        restarted = self.open_store(memory_bytes=100000)
        for _ in range(3):
            self.assertEqual(self.successResultOf(restarted.get(b"k")).body, b"hello")
        self.assertEqual(len(reads), 1)

    def test_without_memory_tier_every_hit_reads_the_file(self):
        """memory_bytes=0: every hit reads the file."""
        store = self.open_store(memory_bytes=0)
        store.put(b"k", sample_entry(b"k"), 60.0)
        reads = self.count_reads()
        for _ in range(3):
            self.assertEqual(self.successResultOf(store.get(b"k")).body, b"hello")
        self.assertEqual(len(reads), 3)

    def test_tier_is_bounded_and_skips_large_values(self):
        """The tier holds at most memory_bytes, least recently used out first, and never a
        value over an eighth of it."""
        store = self.open_store(memory_bytes=80000)
        for i in range(20):
            key = b"k%d" % i
            store.put(key, sample_entry(key, body=b"x" * 5000), 60.0)
        store.put(b"big", sample_entry(b"big", body=b"x" * 20000), 60.0)
        stats = store.stats()
        self.assertLessEqual(stats["memory_bytes"], 80000)
        self.assertLess(stats["memory_entries"], 20)
        self.assertEqual(stats["entries"], 21)
        reads = self.count_reads()
        self.assertIsNotNone(self.successResultOf(store.get(b"k19")))
        self.assertEqual(len(reads), 0)
        self.assertIsNotNone(self.successResultOf(store.get(b"big")))
        self.assertIsNotNone(self.successResultOf(store.get(b"k0")))
        self.assertEqual(len(reads), 2)

    def test_soft_purged_value_from_the_tier_is_stale(self):
        """A soft purge applies to values served from the tier too."""
        store = self.open_store(memory_bytes=100000)
        store.put(b"k", sample_entry(b"k"), 60.0)
        store.purge(prefix=b"k", soft=True)
        self.assertTrue(self.successResultOf(store.get(b"k")).stale)


class SoftPurgeJournalTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.path = os.path.abspath(self.mktemp())

    def open_store(self):
        store = DiskStore(self.path, 100000, 50000, clock=self.clock)
        self.addCleanup(store.close)
        return store

    def test_restart_applies_purges_by_tag_and_prefix_only_to_older_files(self):
        """After a restart, entries written before a matching soft purge are stale; those
        written after it, or not matching, are fresh."""
        first = self.open_store()
        for key, tags in ((b"a1", (b"red",)), (b"a2", ()), (b"b1", (b"red",)), (b"b2", ())):
            first.put(key, sample_entry(key, tags=tags), 60.0, tags=tags)
        first.purge(tag=b"red", soft=True)
        first.purge(prefix=b"a", soft=True)
        after = first._stamps.last_purge + 1
        os.utime(self.file_of(b"b2"), ns=(after, after))  # b2 "rewritten" after the purges
        first.put(b"a1", sample_entry(b"a1"), 60.0)  # rewritten after: fresh again
        self.successResultOf(first.close())
        second = self.open_store()
        stale = {k: self.successResultOf(second.get(k)).stale
                 for k in (b"a1", b"a2", b"b1", b"b2")}
        self.assertEqual(stale, {b"a1": False, b"a2": True, b"b1": True, b"b2": False})

    def file_of(self, key):
        return diskfiles.file_path(self.path, diskfiles.file_name(key))

    def test_order_kept_when_the_wall_clock_stands_still_or_steps_back(self):
        """Files written after a soft purge stay fresh across a restart, those written
        before it are stale, even if the wall clock does not move (a coarse clock) or goes
        back (a clock step) in between."""
        readings = iter([5000, 5000, 5000, 4000, 4000, 3000, 3000])
        store = DiskStore(self.path, 100000, 50000, clock=self.clock,
                          wall_ns=lambda: next(readings))
        store.put(b"a1", sample_entry(b"a1"), 60.0)
        store.put(b"a2", sample_entry(b"a2"), 60.0)
        store.purge(prefix=b"a", soft=True)
        store.put(b"a1", sample_entry(b"a1"), 60.0)
        store.put(b"a3", sample_entry(b"a3"), 60.0)
        store.purge(prefix=b"a3", soft=True)
        store.put(b"a3", sample_entry(b"a3"), 60.0)
        self.successResultOf(store.close())
        second = self.open_store()
        stale = {k: self.successResultOf(second.get(k)).stale for k in (b"a1", b"a2", b"a3")}
        self.assertEqual(stale, {b"a1": False, b"a2": True, b"a3": False})

    def test_record_files_carry_the_store_stamp_not_the_kernel_time(self):
        """A record file's modification time is the store's stamp (here a fixed time in
        2001), not whatever the file system's clock said when it was written."""
        store = DiskStore(self.path, 100000, 50000, clock=self.clock,
                          wall_ns=lambda: 10 ** 18)
        store.put(b"k", sample_entry(b"k"), 60.0)
        self.assertEqual(os.stat(self.file_of(b"k")).st_mtime_ns, 10 ** 18)

    def test_torn_journal_line_is_skipped(self):
        """A journal cut mid-line (a crash while appending) keeps its whole lines."""
        first = self.open_store()
        first.put(b"a", sample_entry(b"a"), 60.0)
        first.put(b"b", sample_entry(b"b"), 60.0)
        first.purge(prefix=b"a", soft=True)
        with open(os.path.join(self.path, purgelog.JOURNAL_NAME), "ab") as f:
            f.write(b"12.5 6")
        second = self.open_store()
        self.assertTrue(self.successResultOf(second.get(b"a")).stale)
        self.assertFalse(self.successResultOf(second.get(b"b")).stale)

    def test_journal_compacted_when_older_than_every_file(self):
        """Purges older than every record file are dropped from the journal at start-up."""
        first = self.open_store()
        first.put(b"a", sample_entry(b"a"), 60.0)
        first.purge(prefix=b"a", soft=True)
        first.delete(b"a")
        self.open_store()
        self.assertFalse(os.path.exists(os.path.join(self.path, purgelog.JOURNAL_NAME)))


class FileQueueTests(unittest.TestCase):
    def test_different_files_run_in_parallel_one_file_in_order(self):
        """Operations on two files are both submitted at once; on one file, one at a time."""
        io = QueuedIO()
        queue = FileQueue(io)
        done = []
        queue.submit("a", done.append, "a1")
        queue.submit("a", done.append, "a2")
        queue.submit("b", done.append, "b1")
        self.assertEqual(len(io.queue), 2)
        idle = queue.idle()
        self.assertNoResult(idle)
        io.run_all()
        self.assertEqual(done, ["a1", "b1", "a2"])
        self.successResultOf(idle)
        self.assertEqual(len(queue), 0)

    def test_a_failure_does_not_block_the_next_operation(self):
        """A failed operation fails its own Deferred; the next one on the file still runs."""
        io = QueuedIO()
        queue = FileQueue(io)
        failed = queue.submit("a", lambda: 1 / 0)
        ok = queue.submit("a", lambda: "ran")
        io.run_all()
        self.failureResultOf(failed, ZeroDivisionError)
        self.assertEqual(self.successResultOf(ok), "ran")


class StampsTests(unittest.TestCase):
    @given(st.lists(st.tuples(st.sampled_from(["write", "purge"]),
                              st.integers(0, 10 ** 6)), max_size=60),
           st.integers(0, 10 ** 6), st.integers(0, 10 ** 6))
    def test_writes_after_a_purge_are_later_and_purges_cover_earlier_writes(
            self, calls, last_write, last_purge):
        """Whatever the wall clock reads (standing still, going back), a record stamped
        after a purge is later than that purge, and a purge is not earlier than any record
        stamped before it (those found on disk at start-up included)."""
        readings = iter([reading for _, reading in calls])
        stamps = purgelog.Stamps(lambda: next(readings), last_write, last_purge)
        writes, purges = [last_write], [last_purge]
        for kind, _ in calls:
            if kind == "write":
                stamp = stamps.write()
                self.assertGreater(stamp, max(purges))
                writes.append(stamp)
            else:
                stamp = stamps.purge()
                self.assertGreaterEqual(stamp, max(writes))
                purges.append(stamp)

    @given(st.integers(0, 2 ** 63), st.none() | st.binary(max_size=8),
           st.none() | st.binary(min_size=1, max_size=8))
    def test_journal_line_reads_back_exactly(self, at_ns, prefix, tag):
        """A journal line gives back the purge's time to the nanosecond."""
        purge = purgelog.SoftPurge(at_ns, prefix or None, tag)
        root = self.mktemp()
        os.makedirs(root)
        purgelog.append(root, purge)
        self.assertEqual(purgelog.read(root), [purge])

    def test_journal_written_with_float_seconds_still_reads(self):
        """A journal from before nanosecond times (``repr`` of a float) reads the same
        instants; a line whose time is not a plain decimal is skipped."""
        root = self.mktemp()
        os.makedirs(root)
        with open(os.path.join(root, purgelog.JOURNAL_NAME), "wb") as f:
            f.write(b"1733430000.125 61 -\n1e9 61 -\n-5.0 61 -\n12 - 74\n")
        self.assertEqual(purgelog.read(root), [
            purgelog.SoftPurge(1733430000125000000, b"a", None),
            purgelog.SoftPurge(12000000000, None, b"t")])
