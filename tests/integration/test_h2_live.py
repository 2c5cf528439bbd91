"""HTTP/2 to clients on loopback over TLS with ALPN: requests end to end, flow control with a
slow reader, many streams, rapid reset, CONTINUATION flood, graceful shutdown."""

from __future__ import annotations

import json
import os

from hyperframe.frame import ContinuationFrame, HeadersFrame
from twisted.internet import defer, reactor, ssl, task
from twisted.internet.endpoints import SSL4ClientEndpoint, connectProtocol
from twisted.trial import unittest
from twisted.web import resource, server

import h2.errors
from revproxy.http2.dispatch import NegotiatingFactory
from tests.integration.h2client import h2_connect
from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, listen, pattern, proxy_config, start_proxy, with_timeout,
)
from tests.integration.test_tls_listener import write_self_signed

ENHANCE_YOUR_CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


class Length(resource.Resource):
    """POST: answers with the length of the body it received."""

    isLeaf = True

    def render_POST(self, request):
        return b"%d" % len(request.content.read())


class Cached(resource.Resource):
    """A cacheable answer; ``hits`` counts the requests that reached the backend."""

    isLeaf = True
    hits = 0

    def render_GET(self, request):
        Cached.hits += 1
        request.setHeader(b"cache-control", b"max-age=60")
        return b"cached body"


class Big(resource.Resource):
    """``/big``: 4 MiB; ``finished`` fires when the backend has written all of it."""

    isLeaf = True
    size = 4 * 1024 * 1024

    def __init__(self):
        resource.Resource.__init__(self)
        self.finished = []

    def render_GET(self, request):
        request.notifyFinish().addBoth(lambda _: self.finished.append(True))
        request.setHeader(b"content-length", b"%d" % self.size)
        request.write(pattern(self.size))
        request.finish()
        return server.NOT_DONE_YET


class Slow(resource.Resource):
    """``/slow``: answers after ``delay`` seconds."""

    isLeaf = True
    delay = 0.3

    def render_GET(self, request):
        reactor.callLater(self.delay, lambda: (request.write(b"slow"), request.finish()))
        return server.NOT_DONE_YET


class H2LiveTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        key_path, cert_path, self.cert_pem = write_self_signed(directory)
        site = backend_site()
        self.big = Big()
        for name, child in ((b"length", Length()), (b"cached", Cached()), (b"big", self.big),
                            (b"slow", Slow())):
            site.resource.putChild(name, child)
        backend = listen(site)
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port], cache={"store": "memory"},
                            http2={"max_resets_per_minute": 100, "max_continuation_frames": 8})
        # the product's own path: an ssl: listener with revproxy's contexts, ALPN h2 offered
        # by default, the connection handed to HTTP/2 by the negotiating factory
        data["server"]["listen"] = ["ssl:0:interface=%s:privateKey=%s:certKey=%s"
                                    % (LOOPBACK, key_path, cert_path)]
        self.service, self.port = yield start_proxy(self, data)

    @defer.inlineCallbacks
    def client(self, **kwargs):
        client = yield with_timeout(h2_connect(self.port, self.cert_pem, **kwargs))
        self.addCleanup(lambda: client.transport.abortConnection()
                        if client.transport.connected else None)
        return client

    @defer.inlineCallbacks
    def test_get_post_and_cache_hit(self):
        """GET and POST with a body end to end; the second GET of a cacheable URL is a hit
        (the backend sees it once)."""
        client = yield self.client()
        _, d = client.request(path=b"/echo")
        status, headers, body = yield with_timeout(d)
        self.assertEqual(status, 200)
        echoed = json.loads(body)
        self.assertEqual(echoed["method"], "GET")
        self.assertIn(["x-forwarded-proto", "https"], echoed["headers"])
        _, d = client.request(b"POST", b"/length", body=b"z" * 100000)
        status, headers, body = yield with_timeout(d)
        self.assertEqual((status, body), (200, b"100000"))
        Cached.hits = 0
        for _ in range(2):
            _, d = client.request(path=b"/cached")
            status, headers, body = yield with_timeout(d)
            self.assertEqual((status, body), (200, b"cached body"))
        self.assertEqual(Cached.hits, 1)
        self.assertTrue(headers[b"cache-status"].startswith(b"revproxy; hit"))

    @defer.inlineCallbacks
    def test_http1_client_on_the_same_listener(self):
        """A client that offers only http/1.1 in ALPN is served HTTP/1.1."""
        options = ssl.optionsForClientTLS("localhost", trustRoot=ssl.Certificate.loadPEM(
            self.cert_pem), acceptableProtocols=[b"http/1.1"])
        client = RawClient()
        yield connectProtocol(SSL4ClientEndpoint(reactor, LOOPBACK, self.port, options), client)
        client.transport.write(b"GET /size/10 HTTP/1.1\r\nHost: a\r\n\r\n")
        (head, body), = yield with_timeout(client.responses(1))
        self.assertEqual((head.status, body), (200, pattern(10)))
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_large_body_to_a_slow_reader(self):
        """4 MiB to a client that reads 64 KiB every 10 ms: it never gets more than its
        window ahead, and the backend has finished long before the client has read it all
        (spoon-feeding, as over HTTP/1.1); the body arrives whole."""
        client = yield self.client(auto_ack=False)
        sid, d = client.request(path=b"/big")
        acked = [0]

        def read_some():
            pending = client.received[sid] - acked[0]
            if pending:
                client.ack(sid, pending)
                acked[0] += pending
            if self.big.finished and acked[0] < Big.size // 2:
                progress.append(acked[0])

        progress = []
        loop = task.LoopingCall(read_some)
        loop.start(0.01)
        try:
            status, headers, body = yield with_timeout(d, 60)
        finally:
            loop.stop()
        self.assertEqual((status, len(body)), (200, Big.size))
        self.assertEqual(body, pattern(Big.size))
        self.assertTrue(progress, "the backend finished while the client had read under half")

    @defer.inlineCallbacks
    def test_large_upload_with_flow_control(self):
        """A 5 MiB request body crosses the stream window many times over."""
        client = yield self.client()
        _, d = client.request(b"POST", b"/length", body=b"u" * (5 * 1024 * 1024))
        status, headers, body = yield with_timeout(d, 30)
        self.assertEqual((status, body), (200, b"%d" % (5 * 1024 * 1024)))

    @defer.inlineCallbacks
    def test_many_concurrent_streams(self):
        """80 streams at once on one connection all get their own answers."""
        client = yield self.client()
        requests = [client.request(path=b"/size/%d" % (1000 + i))[1] for i in range(80)]
        results = yield with_timeout(defer.gatherResults(requests), 30)
        for i, (status, headers, body) in enumerate(results):
            self.assertEqual((status, body), (200, pattern(1000 + i)))

    @defer.inlineCallbacks
    def test_rapid_reset_is_goawayed_and_others_are_served(self):
        """An attacker opening and resetting streams at once is GOAWAY'd
        (ENHANCE_YOUR_CALM) and disconnected; the proxy keeps serving a normal client."""
        attacker = yield self.client()
        for _ in range(300):
            if not attacker.transport.connected:
                break
            sid = attacker.h2.get_next_available_stream_id()
            attacker.h2.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                           (b":authority", b"a"), (b":path", b"/slow")])
            attacker.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            attacker.flush()
        yield with_timeout(attacker.closed)
        self.assertEqual(attacker.goaways[-1][0], ENHANCE_YOUR_CALM)
        client = yield self.client()
        _, d = client.request(path=b"/size/5")
        status, headers, body = yield with_timeout(d)
        self.assertEqual((status, body), (200, pattern(5)))

    @defer.inlineCallbacks
    def test_continuation_flood_is_goawayed(self):
        """HEADERS then endless CONTINUATION frames: GOAWAY and the connection closed."""
        attacker = yield self.client()
        headers = HeadersFrame(1)
        headers.data = attacker.h2.encoder.encode([(b":method", b"GET")])
        attacker.transport.write(headers.serialize())
        frame = ContinuationFrame(1)
        frame.data = b"\x40\x01a\x01b" * 100
        for _ in range(50):
            attacker.transport.write(frame.serialize())
        yield with_timeout(attacker.closed)
        self.assertEqual(attacker.goaways[-1][0], ENHANCE_YOUR_CALM)
        client = yield self.client()
        _, d = client.request(path=b"/size/5")
        status, headers, body = yield with_timeout(d)
        self.assertEqual(status, 200)

    @defer.inlineCallbacks
    def test_graceful_shutdown_with_goaway(self):
        """stopService: the client gets GOAWAY(NO_ERROR, last stream); its stream in flight
        still completes; then the connection closes and the stop completes."""
        client = yield self.client()
        sid, d = client.request(path=b"/slow")
        yield task.deferLater(reactor, 0.1, lambda: None)
        stopped = self.service.stopService()
        status, headers, body = yield with_timeout(d)
        self.assertEqual((status, body), (200, b"slow"))
        self.assertEqual(client.goaways[0], (h2.errors.ErrorCodes.NO_ERROR, sid))
        yield with_timeout(client.closed)
        yield with_timeout(stopped)
