"""Large bodies in the disk store: kept in files, streamed, filled as they arrive."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.cache.bodies import BodyFill, FileBody
from revproxy.cache.stores.disk import DiskStore
from revproxy.interfaces import IStreamingCacheStore
from revproxy.server.streaming import BodyStreamer
from revproxy.testing.stores import QueuedIO, sample_entry

BIG = bytes(range(256)) * (5 * 1024)  # 1.25 MiB, over the 1 MiB streaming threshold


def read_all(body, chunk=100000):
    """Every byte of a body source, read through its ``read`` (inline I/O)."""
    out, pos = [], 0
    while pos < len(body):
        d = body.read(pos, min(chunk, len(body) - pos))
        out.append(d.result if not hasattr(d.result, "value") else d.result.value)
        pos += len(out[-1])
    return b"".join(out)


class FakeSink:
    """An ``IResponseSink`` stand-in that records what it got and can be paused."""

    def __init__(self):
        self.data = []
        self.producer = None
        self.finished = self.aborted = False
        self.writing_paused = False

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.data.append(data)

    def flush(self):
        pass

    def finish(self):
        self.finished = True

    def abort(self, reason):
        self.aborted = reason


class DiskStreamingTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.path = self.mktemp()

    def store(self, **kw):
        store = DiskStore(self.path, clock=self.clock, **kw)
        self.addCleanup(store.close)
        return store

    def test_provides_the_streaming_contract_and_a_gib_max_object(self):
        """The disk store is an IStreamingCacheStore whose own bound defaults to 1 GiB."""
        store = self.store(max_bytes=4 * 1024 ** 3)
        self.assertTrue(IStreamingCacheStore.providedBy(store))
        self.assertEqual(store.max_object, 1024 ** 3)

    def test_large_body_comes_back_in_its_file_small_as_bytes(self):
        """A body over 1 MiB is a FileBody read on demand, with the same bytes; a small
        one, and the packed parts of a 206, come back as bytes."""
        self.store().put(b"k", sample_entry(b"k", BIG), 60)
        self.store().put(b"s", sample_entry(b"s", b"small"), 60)
        self.store().put(b"p", sample_entry(b"p", BIG, status=206), 60)
        fresh = self.store()  # a new store: nothing in memory, read from the files
        big = fresh.get(b"k").result
        self.assertIsInstance(big.body, FileBody)
        self.assertEqual(len(big.body), len(BIG))
        self.assertEqual(read_all(big.body), BIG)
        self.assertEqual(big.headers, sample_entry(b"k", BIG).headers)
        self.assertEqual(fresh.get(b"s").result.body, b"small")
        self.assertEqual(fresh.get(b"p").result.body, BIG)

    def test_body_survives_replacement_of_its_file(self):
        """A stream started on one version keeps reading it after a new version replaced
        the file (no cut, no mixed bytes)."""
        store = self.store()
        store.put(b"k", sample_entry(b"k", BIG), 60)
        old = self.store().get(b"k").result.body
        store.put(b"k", sample_entry(b"k", b"x" * len(BIG)), 60)
        self.assertEqual(read_all(old), BIG)

    def test_put_of_an_entry_whose_body_is_in_a_file_copies_it(self):
        """Re-storing an entry read from a file (a 304 refresh, a soft purge) copies the
        body file to file, and the source stays readable."""
        self.store().put(b"k", sample_entry(b"k", BIG), 60)
        entry = self.store().get(b"k").result
        store = self.store()
        self.assertTrue(store.put(b"k", entry.replace(stale=True), 60).result)
        again = self.store().get(b"k").result
        self.assertTrue(again.stale)
        self.assertEqual(read_all(again.body), BIG)
        self.assertEqual(read_all(entry.body), BIG)

    def test_fill_is_readable_behind_the_writer_and_stored_at_its_end(self):
        """A BodyFill: bytes readable as they are written, no file left in the directory
        (anonymous), then stored whole from its FileBody."""
        store = self.store()
        fill = store.begin_body(len(BIG))
        self.assertIsInstance(fill, BodyFill)
        fill.write(BIG[:700000])
        self.assertEqual(len(fill), 700000)
        self.assertEqual(fill.read(1000, 10).result, BIG[1000:1010])
        fill.write(BIG[700000:])
        body = fill.end().result
        self.assertEqual(read_all(body), BIG)
        self.assertEqual([n for n in os.listdir(self.path) if n.startswith(".fill")], [])
        self.assertTrue(store.put(b"k", sample_entry(b"k", body), 60).result)
        self.assertEqual(read_all(self.store().get(b"k").result.body), BIG)

    def test_fill_refused_over_max_object(self):
        """begin_body with an announced length over the store's max_object: None."""
        store = self.store(max_bytes=8 * 1024 * 1024, max_object=2 * 1024 * 1024)
        self.assertIsNone(store.begin_body(3 * 1024 * 1024))

    def test_fill_writes_run_in_the_io_runner_and_count_a_backlog(self):
        """With threaded I/O, pieces queue (backlog) until written; readers see only what
        is written; on_drained fires once the backlog falls."""
        io = QueuedIO()
        store = self.store(io=io)
        fill = store.begin_body()
        fill.write(b"a" * 10)
        fill.write(b"b" * 10)
        self.assertEqual((fill.backlog, len(fill)), (20, 0))
        drained = []
        fill.on_drained = lambda: drained.append(True)
        io.run_all()
        self.assertEqual((fill.backlog, len(fill), drained), (0, 20, [True]))


class StreamerTests(unittest.TestCase):
    def setUp(self):
        clock = Clock()
        self.store = DiskStore(self.mktemp(), clock=clock)
        self.addCleanup(self.store.close)

    def test_pauses_with_the_sink_one_chunk_at_most_in_memory(self):
        """While the sink is paused nothing more is read; resumed, the rest follows, then
        finish: the bytes asked for, in order."""
        fill = self.store.begin_body()
        fill.write(BIG)
        body = fill.end().result
        sink = FakeSink()
        streamer = BodyStreamer(sink, body, 10, len(BIG) - 10, chunk=65536)
        sink.writing_paused = True  # the client does not read
        streamer.start()
        self.assertEqual(len(sink.data), 1, "one chunk, then it waits")
        sink.writing_paused = False
        streamer.resumeProducing()
        self.assertTrue(sink.finished)
        self.assertEqual(b"".join(sink.data), BIG[10:len(BIG) - 10])
        self.assertIsNone(sink.producer)

    def test_reads_along_a_fill_and_aborts_when_it_fails(self):
        """Behind a fill the streamer waits for the writer; a fill that fails aborts the
        answer (never a clean short body); one that ends finishes it."""
        for outcome in ("end", "fail"):
            fill = self.store.begin_body()
            sink = FakeSink()
            BodyStreamer(sink, fill, 0, None).start()
            fill.write(b"abc")
            fill.write(b"def")
            self.assertEqual(b"".join(sink.data), b"abcdef")
            self.assertFalse(sink.finished or sink.aborted)
            if outcome == "end":
                fill.end()
                self.assertTrue(sink.finished)
            else:
                fill.fail()
                self.assertTrue(sink.aborted)

    def test_unreadable_body_aborts(self):
        """A body file shorter than announced (truncated under us) aborts the answer."""
        fill = self.store.begin_body()
        fill.write(b"x" * 100)
        body = fill.end().result
        sink = FakeSink()
        BodyStreamer(sink, FileBody(body.dup(), 0, 200, body._io), 0, 200).start()
        self.assertTrue(sink.aborted)
        self.flushLoggedErrors()
