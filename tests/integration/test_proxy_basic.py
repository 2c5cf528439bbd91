"""The real proxy on loopback against real Twisted backends: the everyday HTTP/1.1 path."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial import unittest

from tests.integration.support import (
    backend_site, connect, header, listen, pattern, proxy_config, start_proxy, with_timeout,
)


class ProxyBasicsTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.backends = [listen(backend_site()), listen(backend_site())]
        for port in self.backends:
            self.addCleanup(port.stopListening)
        ports = [p.getHost().port for p in self.backends]
        self.service, self.port = yield start_proxy(self, proxy_config(ports))

    @defer.inlineCallbacks
    def exchange(self, data, count=1, methods=None):
        client = yield connect(self.port)
        client.transport.write(data)
        responses = yield with_timeout(client.responses(count, methods))
        client.transport.loseConnection()
        return responses

    @defer.inlineCallbacks
    def test_get_is_proxied_with_forwarding_headers(self):
        """A GET reaches a backend with X-Forwarded-*, Forwarded, Via and a request id."""
        [(head, body)] = yield self.exchange(b"GET /echo?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
        self.assertEqual(head.status, 200)
        seen = json.loads(body)
        headers = dict(seen["headers"])
        self.assertEqual(seen["uri"], "/echo?q=1")
        self.assertEqual(headers["host"], "example.test")
        self.assertEqual(headers["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertEqual(headers["x-forwarded-host"], "example.test")
        self.assertIn("for=127.0.0.1", headers["forwarded"])
        self.assertEqual(headers["via"], "1.1 revproxy")
        self.assertEqual(headers["x-request-id"], "01" * 16)
        self.assertIn(b"revproxy", header(head, b"via"))

    @defer.inlineCallbacks
    def test_round_robin_across_members(self):
        """Successive requests alternate between the pool's two members."""
        request = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
        responses = yield self.exchange(request * 4, count=4)
        ports = [json.loads(body)["port"] for _, body in responses]
        self.assertEqual(len(set(ports)), 2)
        self.assertNotEqual(ports[0], ports[1])
        self.assertEqual(ports[0], ports[2])

    @defer.inlineCallbacks
    def test_pipelined_requests_answered_in_order(self):
        """Three pipelined requests in one packet get three responses in request order."""
        data = b"".join(
            b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % n for n in (10, 20000, 30)
        )
        responses = yield self.exchange(data, count=3)
        self.assertEqual([len(body) for _, body in responses], [10, 20000, 30])
        self.assertEqual(responses[1][1], pattern(20000))

    @defer.inlineCallbacks
    def test_head_response_has_length_but_no_body(self):
        """HEAD is answered with the backend's Content-Length and no body bytes."""
        data = b"HEAD /size/500 HTTP/1.1\r\nHost: a\r\n\r\nGET /size/3 HTTP/1.1\r\nHost: a\r\n\r\n"
        responses = yield self.exchange(data, count=2, methods=[b"HEAD", b"GET"])
        (head, body), (_, body2) = responses
        self.assertEqual(header(head, b"content-length"), b"500")
        self.assertEqual(body, b"")
        self.assertEqual(body2, pattern(3))

    @defer.inlineCallbacks
    def test_post_chunked_body_is_reframed(self):
        """A chunked request body reaches the backend re-framed with a Content-Length."""
        data = (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        [(head, body)] = yield self.exchange(data)
        seen = json.loads(body)
        self.assertEqual(seen["body"], "hello world")
        headers = dict(seen["headers"])
        self.assertEqual(headers["content-length"], "11")
        self.assertNotIn("transfer-encoding", headers)

    @defer.inlineCallbacks
    def test_expect_continue_then_body(self):
        """Expect: 100-continue gets an interim 100, then the final answer."""
        client = yield connect(self.port)
        client.transport.write(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                               b"Expect: 100-continue\r\n\r\n")
        [(interim, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(interim.status, 100)
        client.transport.write(b"data")
        responses = yield with_timeout(client.responses(2))
        self.assertEqual(responses[1][0].status, 200)
        self.assertEqual(json.loads(responses[1][1])["body"], "data")
        seen = dict(json.loads(responses[1][1])["headers"])
        self.assertNotIn("expect", seen)
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_expect_continue_over_limit_is_413_before_body(self):
        """A Content-Length over max_body_size is refused with 413 without reading the body."""
        client = yield connect(self.port)
        client.transport.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n"
                               b"Expect: 100-continue\r\n\r\n")
        [(head, _)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 413)
        yield with_timeout(client.closed)

    @defer.inlineCallbacks
    def test_repeated_set_cookie_kept(self):
        """Every Set-Cookie value from the backend reaches the client."""
        [(head, _)] = yield self.exchange(b"GET /cookies HTTP/1.1\r\nHost: a\r\n\r\n")
        cookies = [v for k, v in head.headers if k == b"set-cookie"]
        self.assertEqual(cookies, [b"a=1; Path=/", b"b=2; Path=/"])

    @defer.inlineCallbacks
    def test_http10_client_gets_close_delimited_or_length(self):
        """An HTTP/1.0 client is answered without chunking and the connection then closes."""
        client = yield connect(self.port)
        client.transport.write(b"GET /size/100 HTTP/1.0\r\n\r\n")
        data = yield with_timeout(client.closed)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "))
        self.assertNotIn(b"chunked", data.lower())
        self.assertTrue(data.endswith(pattern(100)))

    @defer.inlineCallbacks
    def test_no_content_and_not_modified_have_no_body(self):
        """204 and 304 from the backend are framed without a body; the next response follows."""
        data = (b"GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /status/304 HTTP/1.1\r\nHost: a\r\n\r\n"
                b"GET /size/2 HTTP/1.1\r\nHost: a\r\n\r\n")
        responses = yield self.exchange(data, count=3)
        self.assertEqual([h.status for h, _ in responses], [204, 304, 200])
        self.assertEqual(responses[2][1], pattern(2))
        self.assertIsNone(header(responses[0][0], b"transfer-encoding"))
