"""The cache on real sockets: hits spare the backend, Cache-Status, status metrics, --cache."""

from __future__ import annotations

import json
import os

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import resource, server

from tests.integration.support import connect, listen, proxy_config, start_proxy, with_timeout
from tests.integration.test_twistd import spawn


class Counted(resource.Resource):
    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.served = 0

    def render_GET(self, request):
        self.served += 1
        request.setHeader(b"cache-control", b"max-age=60")
        request.setHeader(b"etag", b'"v1"')
        return b"body-%d" % self.served


def counted_backend(testcase):
    backend = Counted()
    site = server.Site(backend)
    site.log = lambda request: None
    port = listen(site)
    testcase.addCleanup(port.stopListening)
    return backend, port.getHost().port


@defer.inlineCallbacks
def get(port, path=b"/x", extra=b""):
    client = yield connect(port)
    client.transport.write(b"GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n" % (path, extra))
    [(head, body)] = yield with_timeout(client.responses(1))
    client.transport.loseConnection()
    return head, body


def field(head, name):
    return dict(head.headers).get(name)


@defer.inlineCallbacks
def post(port, path):
    client = yield connect(port)
    client.transport.write(b"POST %s HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n" % path)
    [(head, body)] = yield with_timeout(client.responses(1))
    client.transport.loseConnection()
    return head, body


class Tagged(Counted):
    def render_GET(self, request):
        body = Counted.render_GET(self, request)
        request.setHeader(b"cache-tag", b"product-7 listing")
        return body


class PurgeTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self):
        self.backend = Tagged()
        site = server.Site(self.backend)
        site.log = lambda request: None
        port = listen(site)
        self.addCleanup(port.stopListening)
        data = proxy_config([port.getHost().port], cache={"store": "memory"},
                            admin={"listen": ["tcp:0:interface=127.0.0.1"]})
        self.service, self.port = yield start_proxy(self, data)
        self.admin = self.service.ports[0].getHost().port

    @defer.inlineCallbacks
    def test_purge_by_tag(self):
        """POST /purge?tag=T drops every response that carried the tag: the next GET misses."""
        yield self.start()
        yield get(self.port, b"/p/1")
        yield get(self.port, b"/p/2")
        head, body = yield post(self.admin, b"/purge?tag=product-7")
        self.assertEqual(json.loads(body), {"purged": 2})
        head, _ = yield get(self.port, b"/p/1")
        self.assertIn(b"fwd=uri-miss", field(head, b"cache-status"))
        self.assertEqual(self.backend.served, 3)

    @defer.inlineCallbacks
    def test_purge_by_prefix_and_soft_url(self):
        """prefix= deletes under a path; a soft url= purge makes the next GET revalidate."""
        yield self.start()
        yield get(self.port, b"/a/1")
        yield get(self.port, b"/b/1")
        head, body = yield post(self.admin, b"/purge?prefix=http://a/a/")
        self.assertEqual(json.loads(body), {"purged": 1})
        head, _ = yield get(self.port, b"/b/1")
        self.assertTrue(field(head, b"cache-status").startswith(b"revproxy; hit"))
        head, body = yield post(self.admin, b"/purge?url=http://a/b/1&soft=1")
        self.assertEqual(json.loads(body), {"purged": 1})
        head, _ = yield get(self.port, b"/b/1")
        self.assertIn(b"fwd=stale", field(head, b"cache-status"))

    @defer.inlineCallbacks
    def test_purge_needs_one_selector(self):
        """A purge without url/prefix/tag is a 400, not a purge of everything."""
        yield self.start()
        head, _ = yield post(self.admin, b"/purge")
        self.assertEqual(head.status, 400)


class CacheLiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_second_request_is_a_hit(self):
        """Two GETs: the backend sees one; the second answer is a hit with the same body."""
        backend, backend_port = counted_backend(self)
        data = proxy_config([backend_port], cache={"store": "memory"},
                            admin={"listen": ["tcp:0:interface=127.0.0.1"]})
        service, port = yield start_proxy(self, data)
        first_head, first = yield get(port)
        second_head, second = yield get(port)
        self.assertEqual(backend.served, 1)
        self.assertEqual(first, second)
        self.assertIn(b"fwd=uri-miss", field(first_head, b"cache-status"))
        self.assertTrue(field(second_head, b"cache-status").startswith(b"revproxy; hit"))
        admin_port = service.ports[0].getHost().port
        head, body = yield get(admin_port, b"/status")
        metrics = json.loads(body)["cache"]["metrics"]
        self.assertEqual((metrics["hits"], metrics["misses"], metrics["stored"]), (1, 1, 1))

    @defer.inlineCallbacks
    def test_route_without_cache_always_forwards(self):
        """`cache = false` on a route: every request reaches the backend, no Cache-Status."""
        backend, backend_port = counted_backend(self)
        data = proxy_config([backend_port], routes=[{"pool": "main", "cache": False}],
                            cache={"store": "memory"})
        service, port = yield start_proxy(self, data)
        for _ in range(2):
            head, _ = yield get(port)
            self.assertIsNone(field(head, b"cache-status"))
        self.assertEqual(backend.served, 2)

    @defer.inlineCallbacks
    def test_disk_store_survives_a_restart(self):
        """With the disk store, a second proxy on the same directory serves the stored copy."""
        backend, backend_port = counted_backend(self)
        path = os.path.abspath(self.mktemp())
        data = proxy_config([backend_port], cache={"store": "disk", "store_options": {"path": path}})
        service, port = yield start_proxy(self, dict(data))
        yield get(port)
        yield service.stopService()
        data = proxy_config([backend_port], cache={"store": "disk", "store_options": {"path": path}})
        service, port = yield start_proxy(self, data)
        head, body = yield get(port)
        self.assertEqual(backend.served, 1)
        self.assertTrue(field(head, b"cache-status").startswith(b"revproxy; hit"))


class QuickStartCacheTests(unittest.TestCase):
    def setUp(self):
        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_cache_flag(self):
        """`--cache memory` on the quick start caches: the second GET is a hit."""
        backend, backend_port = counted_backend(self)
        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--listen",
                                "tcp:0:interface=127.0.0.1", "--upstream",
                                "http://127.0.0.1:%d" % backend_port, "--cache", "memory")
        match = yield proc.wait_for(rb"port=(\d+)\) \(tcp:0")
        port = int(match.group(1))
        yield get(port)
        head, _ = yield get(port)
        self.assertTrue(field(head, b"cache-status").startswith(b"revproxy; hit"))
        self.assertEqual(backend.served, 1)
        transport.signalProcess("TERM")
        yield with_timeout(proc.ended, 30)

