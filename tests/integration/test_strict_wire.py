"""Smuggling and malformed-request probes against the real proxy: answered, never forwarded."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from tests.integration.support import (
    connect, listen, proxy_config, scripted_factory, start_proxy, with_timeout,
)

PROBES = [
    # (name, raw request, expected status)
    ("cl_and_te", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_identity_with_cl", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n"
                            b"Content-Length: 3\r\n\r\nabc", 400),
    ("te_not_last_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("duplicate_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("cl_list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
    ("cl_plus_sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("huge_cl", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000000\r\n\r\n", 413),
    ("bad_chunk_size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_missing_crlf", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhelloXX0\r\n\r\n", 400),
    ("bare_lf", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare_cr", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ("obs_fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  2\r\n\r\n", 400),
    ("nul_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n", 400),
    ("space_before_colon", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n", 400),
    ("missing_host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate_host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("invalid_host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("absolute_form_mismatch", b"GET http://evil.test/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("del_in_target", b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("high_byte_in_target", b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("long_target", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    ("huge_header", b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
    ("too_many_headers", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n", 431),
    ("http_2_version", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("encoded_slash", b"GET /a%2f..%2fetc HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("dot_segments_above_root", b"GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("connect_method", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    ("unknown_coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
]


class StrictWireTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.backend_log = []
        backend = listen(scripted_factory(
            lambda proto, head: proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            self.backend_log))
        self.addCleanup(backend.stopListening)
        _, self.port = yield start_proxy(self, proxy_config([backend.getHost().port]))

    @defer.inlineCallbacks
    def probe(self, raw):
        client = yield connect(self.port)
        client.transport.write(raw)
        [(head, _)] = yield with_timeout(client.responses(1), 5)
        client.transport.loseConnection()
        return head

    @defer.inlineCallbacks
    def test_probes_answered_and_never_forwarded(self):
        """Each malformed or ambiguous request gets its specific status; none reaches the backend."""
        failures = []
        for name, raw, status in PROBES:
            head = yield self.probe(raw)
            if head.status != status:
                failures.append("%s: %d, expected %d" % (name, head.status, status))
        self.assertEqual(failures, [])
        self.assertEqual([e for e in self.backend_log if e[0] == "request"], [])

    @defer.inlineCallbacks
    def test_framing_errors_close_the_connection(self):
        """After a framing error the connection is closed: nothing after it is parsed."""
        client = yield connect(self.port)
        client.transport.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                               b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        data = yield with_timeout(client.closed, 5)
        self.assertEqual(data.count(b"HTTP/1.1 "), 1)
        self.assertEqual([e for e in self.backend_log if e[0] == "request"], [])

    @defer.inlineCallbacks
    def test_chunk_extensions_and_trailers_do_not_reach_backend(self):
        """Client framing bytes never reach a backend verbatim: the body is re-framed."""
        raw = (b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")
        head = yield self.probe(raw)
        self.assertEqual(head.status, 200)
        [request] = [e[1] for e in self.backend_log if e[0] == "request"]
        self.assertTrue(request.endswith(b"content-length: 3\r\n\r\nabc"))
        self.assertNotIn(b"ext=1", request)
        self.assertNotIn(b"x-trailer", request.lower())
