"""Bodies both ways on real sockets: uploads spooled to disk, streamed routes, tunnels, 1.0."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial import unittest

from tests.integration.support import (
    backend_site, connect, listen, pattern, proxy_config, scripted_factory, start_proxy,
    with_timeout,
)


class BodyTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self, routes=None, **sections):
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port], routes=routes, **sections)
        self.service, self.port = yield start_proxy(self, data)

    @defer.inlineCallbacks
    def test_large_upload_spooled_to_disk_reaches_backend_whole(self):
        """A 2 MB upload over a 64 KiB memory limit is spooled to a file and forwarded intact."""
        yield self.start(buffering={"request_memory": 65536})
        body = pattern(2 * 1024 * 1024)
        client = yield connect(self.port)
        client.transport.write(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
        client.transport.write(body)
        [(head, answer)] = yield with_timeout(client.responses(1), 30)
        seen = json.loads(answer)
        self.assertEqual(seen["body"].encode("latin-1"), body)
        self.assertEqual(self.service.runtime.budget.disk_used, 0)
        self.assertEqual(self.service.runtime.budget.memory_used, 0)
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_upload_over_max_body_size_is_413(self):
        """A chunked upload that grows past max_body_size is cut off with 413."""
        yield self.start(limits={"max_body_size": 1000})
        client = yield connect(self.port)
        client.transport.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.transport.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 413)
        yield with_timeout(client.closed)

    @defer.inlineCallbacks
    def test_streaming_route_relays_large_response(self):
        """A route with buffering = false streams a 5 MB response with back-pressure, intact."""
        yield self.start(routes=[{"pool": "main", "buffering": False}])
        client = yield connect(self.port)
        size = 5 * 1024 * 1024
        client.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
        [(head, body)] = yield with_timeout(client.responses(1), 30)
        self.assertEqual(body, pattern(size))
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_http10_keep_alive(self):
        """An HTTP/1.0 client asking for keep-alive gets it, with Content-Length framing."""
        yield self.start()
        client = yield connect(self.port)
        request = b"GET /size/7 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        client.transport.write(request + request)
        responses = yield with_timeout(client.responses(2))
        for head, body in responses:
            self.assertEqual(body, pattern(7))
            self.assertIn((b"connection", b"keep-alive"), head.headers)
        client.transport.loseConnection()


class TunnelTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_websocket_tunnel_on_real_sockets(self):
        """A WebSocket upgrade is answered 101 and bytes echo through the tunnel both ways."""
        log = []

        def script(proto, head):
            proto.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                  b"Upgrade: websocket\r\n\r\n")
            # From now on this backend echoes raw bytes.
            proto.dataReceived = lambda data: proto.transport.write(b"echo:" + data)

        backend = listen(scripted_factory(script, log))
        self.addCleanup(backend.stopListening)
        _, port = yield start_proxy(self, proxy_config([backend.getHost().port]))
        client = yield connect(port)
        client.transport.write(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 101)
        start = len(client.received)
        client.transport.write(b"\x81\x05hello")
        yield with_timeout(client.until(lambda data: data[start:].endswith(b"hello")))
        self.assertTrue(client.received[start:].endswith(b"echo:\x81\x05hello"))
        client.transport.loseConnection()

