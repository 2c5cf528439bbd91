"""Large media through the cache stage with the disk store: filled as it streams, read
along by concurrent clients, served from the file (whole or any range)."""

from __future__ import annotations

from twisted.trial import unittest

from tests.unit.test_cache_path import CacheWorld, get, header

BODY = bytes(range(256)) * (12 * 1024)  # 3 MiB, over [cache] max_object (64k here)


def head(length=len(BODY), extra=b""):
    framing = b"Content-Length: %d\r\n" % length if length is not None else (
        b"Transfer-Encoding: chunked\r\n")
    return (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nETag: \"v1\"\r\n" + extra
            + framing + b"\r\n")


def chunked(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


class LargeMediaTests(unittest.TestCase):
    def world(self, **cache):
        cache.setdefault("max_object", "64k")
        return CacheWorld(self, store="disk", store_options={
            "path": self.mktemp(), "threads": 0, "max_bytes": "64m"}, **cache)

    def test_first_client_streams_while_filling_others_read_along(self):
        """The first request streams from the origin while its body fills the disk store;
        a second client during the fill reads along behind the writer (no second origin
        request); afterwards hits and ranges come from the file."""
        world = self.world()
        first, first_t = world.client()
        first.dataReceived(get(b"/video"))
        origin, origin_t = world.accept_backend()
        origin.dataReceived(head() + BODY[:1000000])
        self.assertIn(b"stored", header(first_t.value(), b"cache-status"))
        self.assertTrue(first_t.value().endswith(BODY[:1000000]))

        second, second_t = world.client(("127.0.0.1", 40001))
        second.dataReceived(get(b"/video"))
        self.assertEqual(world.pending_connects, 0, "no second origin request")
        self.assertIn(b"hit", header(second_t.value(), b"cache-status"))
        self.assertIn(b"filling", header(second_t.value(), b"cache-status"))
        self.assertEqual(header(second_t.value(), b"content-length"), b"%d" % len(BODY))
        self.assertEqual(body_of(second_t.value()), BODY[:1000000])

        origin.dataReceived(BODY[1000000:])
        self.assertEqual(body_of(first_t.value()), BODY)
        self.assertEqual(body_of(second_t.value()), BODY)

        whole, asked = world.fetch(get(b"/video"))
        self.assertIsNone(asked)
        self.assertEqual(header(whole, b"cache-status"), b"revproxy; hit; ttl=600")
        self.assertEqual(body_of(whole), BODY)
        ranged, asked = world.fetch(get(b"/video", b"Range: bytes=2000000-2000099\r\n"))
        self.assertIsNone(asked)
        self.assertTrue(ranged.startswith(b"HTTP/1.1 206 "))
        self.assertEqual(header(ranged, b"content-range"), b"bytes 2000000-2000099/%d" % len(BODY))
        self.assertEqual(body_of(ranged), BODY[2000000:2000100])

    def test_range_while_filling_waits_for_the_writer(self):
        """A range beyond what is written yet is answered as the writer gets there."""
        world = self.world()
        first, _ = world.client()
        first.dataReceived(get(b"/v"))
        origin, _ = world.accept_backend()
        origin.dataReceived(head() + BODY[:100000])
        reader, reader_t = world.client(("127.0.0.1", 40001))
        reader.dataReceived(get(b"/v", b"Range: bytes=2000000-2000009\r\n"))
        self.assertTrue(reader_t.value().startswith(b"HTTP/1.1 206 "))
        self.assertEqual(body_of(reader_t.value()), b"")
        origin.dataReceived(BODY[100000:])
        self.assertEqual(body_of(reader_t.value()), BODY[2000000:2000010])

    def test_chunked_body_spills_from_memory_to_the_file(self):
        """A body of unknown length outgrows [cache] max_object in memory and goes on in a
        file: stored whole, never relayed-only."""
        world = self.world()
        client, client_t = world.client()
        client.dataReceived(get(b"/c"))
        origin, _ = world.accept_backend()
        origin.dataReceived(head(None))
        for i in range(0, len(BODY), 500000):
            origin.dataReceived(chunked(BODY[i:i + 500000]))
        origin.dataReceived(b"0\r\n\r\n")
        whole, asked = world.fetch(get(b"/c"))
        self.assertIsNone(asked)
        self.assertEqual(body_of(whole), BODY)

    def test_broken_fill_aborts_readers_and_stores_nothing(self):
        """The origin dies mid-body: readers behind the fill see a broken answer, and the
        next request goes to the origin again."""
        world = self.world()
        first, first_t = world.client()
        first.dataReceived(get(b"/b"))
        origin, origin_t = world.accept_backend()
        origin.dataReceived(head() + BODY[:200000])
        reader, reader_t = world.client(("127.0.0.1", 40001))
        reader.dataReceived(get(b"/b"))
        self.assertEqual(body_of(reader_t.value()), BODY[:200000])
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure
        origin.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(reader_t.disconnecting or reader_t.aborted)
        _, asked = world.fetch(get(b"/b"))
        self.assertIsNotNone(asked)
