"""The disk store with its real thread pool: a slow disk (a write that sleeps in its thread)
never stalls the reactor; other keys are read meanwhile; close drains the writes."""

from __future__ import annotations

import os
import time

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from revproxy.cache.stores import diskfiles
from revproxy.cache.stores.disk import DiskStore
from revproxy.testing import sample_entry

_SLOW = 0.6  # seconds each patched write sleeps in its I/O thread


class SlowDiskTests(unittest.TestCase):
    def open_store(self, threads):
        store = DiskStore.from_options(
            {"path": os.path.abspath(self.mktemp()), "threads": threads, "memory_bytes": 0},
            reactor)
        self.addCleanup(store.close)
        return store

    def slow_writes(self):
        real = diskfiles.write_atomically

        def slow(path, data, fsync, mtime_ns=None):
            time.sleep(_SLOW)
            real(path, data, fsync, mtime_ns)

        self.patch(diskfiles, "write_atomically", slow)

    @defer.inlineCallbacks
    def test_slow_writes_do_not_stall_the_reactor(self):
        """While two writes sleep in their threads, a reactor timer fires on time and a
        hit on another key (read from its file) is answered before the writes end."""
        store = self.open_store(threads=4)
        yield store.put(b"other", sample_entry(b"other", body=b"o" * 5000), 60.0)
        self.slow_writes()
        started = time.monotonic()
        puts = [store.put(b"slow-%d" % i, sample_entry(b"slow-%d" % i), 60.0)
                for i in range(2)]
        called_in = time.monotonic() - started
        yield task.deferLater(reactor, 0.01, lambda: None)
        timer_late = time.monotonic() - started
        found = yield store.get(b"other")
        read_after = time.monotonic() - started
        self.assertEqual(found.body, b"o" * 5000)
        self.assertFalse(any(d.called for d in puts))
        self.assertLess(called_in, 0.1)
        self.assertLess(timer_late, _SLOW / 2)
        self.assertLess(read_after, _SLOW / 2)
        self.assertEqual((yield defer.gatherResults(puts)), [True, True])
        self.assertEqual(store.stats()["writes_pending"], 0)

    @defer.inlineCallbacks
    def test_close_waits_for_slow_writes(self):
        """close fires after the writes in flight ended: a new store sees their values."""
        store = self.open_store(threads=2)
        self.slow_writes()
        put = store.put(b"k", sample_entry(b"k"), 60.0)
        yield store.close()
        self.assertTrue(put.called)
        again = DiskStore(store.path, clock=reactor)
        self.assertEqual((yield again.get(b"k")).body, b"hello")
