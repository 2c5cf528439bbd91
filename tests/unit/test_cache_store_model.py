"""Random sequences of store operations agree with a plain model of the ICacheStore rules
(LRU by bytes, max_object, ttl, tags, soft purge), for the memory and the disk store."""

from __future__ import annotations

import shutil
import tempfile
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.cache.entry import value_to_bytes
from revproxy.cache.stores import diskfiles
from revproxy.cache.stores.disk import DiskStore
from revproxy.cache.stores.memory import MemoryStore
from revproxy.testing import sample_entry

MAX_BYTES = 4000
MAX_OBJECT = 2000


def STILL_WALL():
    return 1700000000 * 10 ** 9


keys = st.sampled_from([b"a/1", b"a/2", b"a/3", b"b/1", b"b/2", b"c"])
puts = st.tuples(st.just("put"), keys, st.sampled_from([0, 400, 900, 900, 1300, 2500]),
                 st.sampled_from([-1.0, 0.0, 5.0, 5.0, 50.0, 50.0, 50.0, 50.0]),
                 st.sampled_from([(), (b"t1",), (b"t2",), (b"t1", b"t2")]))
gets = st.tuples(st.just("get"), keys)
# Puts and gets drawn most often, so sequences reach the byte bound and reorder the LRU.
operations = st.lists(st.one_of(
    puts, puts, puts, gets, gets, gets,
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("purge"), st.sampled_from([None, b"a/", b"b", b"c"]),
              st.sampled_from([None, b"t1", b"t2"]), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([1.0, 10.0])),
    st.tuples(st.just("sweep")),
), min_size=30, max_size=80)


class Model:
    """The store rules, written plainly: an OrderedDict in least-recently-used order of
    key -> [value, size, expires_at, tags, stale]."""

    def __init__(self, size_of):
        self.size_of = size_of
        self.items = OrderedDict()

    def get(self, key, now):
        item = self.items.get(key)
        if item is None or item[2] <= now:
            self.items.pop(key, None)
            return None
        self.items.move_to_end(key)
        return item[0].replace(stale=True) if item[4] else item[0]

    def put(self, key, value, ttl, tags, now):
        self.items.pop(key, None)
        size = self.size_of(key, value, tags)
        if ttl <= 0 or size > MAX_OBJECT:
            return False
        self.items[key] = [value, size, now + ttl, tags, False]
        while self.bytes() > MAX_BYTES and len(self.items) > 1:
            self.items.popitem(last=False)
        return True

    def purge(self, prefix, tag, soft):
        matched = [k for k, item in self.items.items()
                   if (prefix is None or k.startswith(prefix)) and (tag is None or tag in item[3])]
        for key in matched:
            if soft:
                self.items[key][4] = True
            else:
                del self.items[key]
        return len(matched)

    def sweep(self, now):
        expired = [k for k, item in self.items.items() if item[2] <= now]
        for key in expired:
            del self.items[key]
        return len(expired)

    def bytes(self):
        return sum(item[1] for item in self.items.values())


def disk_size(key, value, tags):
    return len(diskfiles.encode_record(key, value_to_bytes(value), 0.0, tags))


class ModelMixin:
    def run_against_model(self, store, clock, model, ops):
        for serial, op in enumerate(ops):
            now = clock.seconds()
            if op[0] == "put":
                _, key, length, ttl, tags = op
                value = sample_entry(key, body=bytes([serial]) * length, tags=tags)
                expected = model.put(key, value, ttl, tags, now)
                self.assertEqual(self.successResultOf(store.put(key, value, ttl, tags)),
                                 expected, op)
            elif op[0] == "get":
                self.assertEqual(self.successResultOf(store.get(op[1])), model.get(op[1], now),
                                 op)
            elif op[0] == "delete":
                model.items.pop(op[1], None)
                self.successResultOf(store.delete(op[1]))
            elif op[0] == "purge":
                self.assertEqual(self.successResultOf(store.purge(*op[1:])), model.purge(*op[1:]),
                                 op)
            elif op[0] == "advance":
                clock.advance(op[1])
            else:
                self.assertEqual(store.sweep(), model.sweep(now))
            stats = store.stats()
            self.assertEqual((stats["entries"], stats["bytes"]),
                             (len(model.items), model.bytes()), op)
            self.assertLessEqual(stats["bytes"], MAX_BYTES)

    def assert_same_contents(self, store, clock, model):
        for key in sorted(model.items):
            self.assertEqual(self.successResultOf(store.get(key)),
                             model.get(key, clock.seconds()), key)


class StoreModelTests(ModelMixin, unittest.TestCase):
    @settings(max_examples=150, deadline=None)
    @given(operations)
    def test_memory_store_follows_the_model(self, ops):
        """MemoryStore: every result, entry count and byte count match the model."""
        clock = Clock()
        store = MemoryStore(MAX_BYTES, MAX_OBJECT, clock=clock)
        model = Model(lambda key, value, tags: value.size)
        self.run_against_model(store, clock, model, ops)
        self.assert_same_contents(store, clock, model)

    @settings(max_examples=100, deadline=None)
    @given(operations)
    def test_disk_store_follows_the_model_across_a_restart(self, ops):
        """DiskStore: every result matches the model, and a store reopened on the same
        directory holds the same values."""
        clock = Clock()
        path = tempfile.mkdtemp(prefix="revproxy-disk-model-")
        try:
            # a wall clock that stands still: every record file and soft purge falls in the
            # same nanosecond, so only the store's stamps keep them in order
            store = DiskStore(path, MAX_BYTES, MAX_OBJECT, clock=clock, wall_ns=STILL_WALL)
            model = Model(disk_size)
            self.run_against_model(store, clock, model, ops)
            store.close()
            reopened = DiskStore(path, MAX_BYTES, MAX_OBJECT, clock=clock, wall_ns=STILL_WALL)
            self.assertEqual(reopened.stats()["bytes"],
                             sum(i[1] for i in model.items.values() if i[2] > clock.seconds()))
            self.assert_same_contents(reopened, clock, model)
        finally:
            shutil.rmtree(path)
