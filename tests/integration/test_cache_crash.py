"""Crash safety of the disk store with a real ``twistd revproxy``: kill -9 during a burst of
stores of large objects, restart on the same directory, and every entry served is whole."""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import resource, server

from tests.integration.support import connect, listen, parse_responses, with_timeout
from tests.integration.test_twistd import spawn

LISTENING = rb"listening on IPv4Address\(type='TCP', host='127\.0\.0\.1', port=(\d+)\)"
SIZES = (20 * 1024, 300 * 1024, 1536 * 1024)  # in memory, filled to a file, streamed too
OBJECTS = 18


def expected(n: int) -> bytes:
    """Object n's body: its number repeated, so a torn or mixed body shows."""
    return (b"%08d" % n) * (SIZES[n % len(SIZES)] // 8)


class Objects(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        n = int(request.postpath[-1])
        request.setHeader(b"cache-control", b"max-age=600")
        request.setHeader(b"etag", b'"%d"' % n)
        return expected(n)


def config(directory, backend_port):
    path = os.path.join(directory, "rp.toml")
    with open(path, "w") as f:
        f.write('[server]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                '[pools.main]\nmembers = ["http://127.0.0.1:%d"]\n'
                '[buffering]\ntemp_dir = "%s"\n'
                '[cache]\nstore = "disk"\nmax_object = "64k"\n'
                '[cache.store_options]\npath = "%s"\nthreads = 4\n'
                % (backend_port, os.path.join(directory, "spool"),
                   os.path.join(directory, "cache")))
    return path


@defer.inlineCallbacks
def fetch(port, n):
    """(status, Cache-Status, body) of GET /obj/n on a connection of its own."""
    client = yield connect(port)
    client.transport.write(b"GET /obj/%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % n)
    data = yield with_timeout(client.closed, 30)
    [(head, body)] = parse_responses(data)
    status = dict((k, v) for k, v in head.headers).get(b"cache-status", b"")
    return head.status, status, body


class CrashSafetyTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_kill_9_during_stores_leaves_no_corrupt_entry(self):
        """A burst of fetches (so of stores) killed with SIGKILL part-way; after a restart
        on the same directory, and with one record truncated as a torn write would leave
        it, every object served from the cache is byte-for-byte whole, the rest are misses."""
        site = server.Site(Objects())
        site.log = lambda request: None
        backend = listen(site)
        self.addCleanup(backend.stopListening)
        path = config(self.mktemp_dir, backend.getHost().port)

        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", path)
        port = int((yield proc.wait_for(LISTENING)).group(1))
        done = []
        burst = [fetch(port, n).addCallback(done.append) for n in range(OBJECTS)]
        for d in burst:
            d.addErrback(lambda f: None)  # the kill cuts some of them
        for _ in range(600):  # bounded: until a third of the objects have come back
            if len(done) >= OBJECTS // 3:
                break
            yield deferLater(0.01)
        transport.signalProcess("KILL")
        yield with_timeout(proc.ended, 30)
        yield defer.DeferredList(burst)

        records = [os.path.join(d, name) for d, _, names in
                   os.walk(os.path.join(self.mktemp_dir, "cache")) for name in names
                   if not name.startswith(".")]
        self.assertTrue(records, "some stores were done before the kill")
        largest = max(records, key=os.path.getsize)
        with open(largest, "r+b") as f:  # a torn write on a filesystem without atomic rename
            f.truncate(os.path.getsize(largest) // 2)

        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--config", path)
        port = int((yield proc.wait_for(LISTENING)).group(1))
        hits = 0
        for n in range(OBJECTS):
            status, cache_status, body = yield fetch(port, n)
            self.assertEqual(status, 200)
            self.assertEqual(len(body), len(expected(n)), (n, cache_status))
            self.assertTrue(body == expected(n), "object %d served corrupt (%s)"
                            % (n, cache_status))
            hits += b"hit" in cache_status
        self.assertGreater(hits, 0, "entries stored before the kill are served")
        self.assertLess(hits, OBJECTS, "the truncated record is not served")
        transport.signalProcess("TERM")
        yield with_timeout(proc.ended, 30)


def deferLater(seconds):
    from twisted.internet import reactor, task

    return task.deferLater(reactor, seconds, lambda: None)
