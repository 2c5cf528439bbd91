"""HTTP/2 to clients on a fake reactor: an h2 client drives ``H2ServerConnection`` against
fake backends; the same pipeline as HTTP/1.1 answers."""

from __future__ import annotations

import h2.events
from h2.errors import ErrorCodes
from twisted.trial import unittest

from tests.unit.h2world import H2Client, backend_request
from tests.unit.world import World, config_dict

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RequestTests(unittest.TestCase):
    def test_get_goes_through_the_pipeline(self):
        """A GET on a stream reaches the backend as HTTP/1.1 and its answer comes back."""
        access = []
        data = config_dict()
        data["logging"]["access_log"] = "-"
        world = World(self, data, access=access)
        client = H2Client(world)
        sid = client.request(headers=[(b"user-agent", b"t")])
        client.exchange()
        backend, upstream = world.accept_backend()
        line, fields = backend_request(upstream)
        self.assertEqual(line, b"GET /x HTTP/1.1")
        self.assertEqual(fields[b"host"], b"a.test")
        self.assertEqual(fields[b"x-forwarded-proto"], b"https")
        self.assertIn(b"2 revproxy", fields[b"via"])
        backend.dataReceived(OK)
        client.exchange()
        self.assertEqual(client.response(sid)[0::2], (200, b"ok"))
        self.assertTrue(client.response(sid)[3])
        self.assertEqual(client.response(sid)[1][b"content-length"], b"2")
        self.assertEqual([(r.status, r.version) for r in access], [(200, b"2")])

    def test_post_body_is_forwarded_whole(self):
        """A request body in several DATA frames reaches the backend with a Content-Length."""
        world = World(self)
        client = H2Client(world)
        sid = client.request(b"POST", body=b"hello ", end=False)
        client.h2.send_data(sid, b"world", end_stream=True)
        client.exchange()
        backend, upstream = world.accept_backend()
        line, fields = backend_request(upstream)
        self.assertEqual(line, b"POST /x HTTP/1.1")
        self.assertEqual(fields[b"content-length"], b"11")
        self.assertTrue(upstream.value().endswith(b"\r\n\r\nhello world"))
        backend.dataReceived(OK)
        client.exchange()
        self.assertEqual(client.response(sid)[0], 200)

    def test_cookie_crumbs_are_joined(self):
        """Cookie crumbs (RFC 9113 §8.2.3) reach the backend as one Cookie field."""
        world = World(self)
        client = H2Client(world)
        client.request(headers=[(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")])
        client.exchange()
        backend, upstream = world.accept_backend()
        self.assertIn(b"cookie: a=1; b=2\r\n", upstream.value())
        self.assertEqual(upstream.value().count(b"cookie:"), 1)

    def test_concurrent_streams_share_the_connection(self):
        """Three streams at once each get their own backend exchange and answer."""
        world = World(self)
        client = H2Client(world)
        sids = [client.request(path=b"/%d" % i) for i in range(3)]
        client.exchange()
        for i in range(3):
            backend, upstream = world.accept_backend()
            self.assertTrue(upstream.value().startswith(b"GET /%d " % i))
            body = b"r%d" % i
            backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
        client.exchange()
        self.assertEqual([client.response(s)[2] for s in sids], [b"r0", b"r1", b"r2"])

    def test_no_route_is_404_on_the_stream_only(self):
        """The pipeline's own answers (404 here) go to the stream; the connection lives on."""
        world = World(self, config_dict(routes=[{"name": "a", "hosts": ["a.test"],
                                                  "pool": "main"}]))
        client = H2Client(world)
        sid = client.request(authority=b"other.test")
        client.exchange()
        self.assertEqual(client.response(sid)[0], 404)
        self.assertIsNone(client.goaway())
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        client.exchange()
        self.assertEqual(client.response(sid)[0], 200)

    def test_head_request_has_no_body(self):
        """HEAD: the head (with the backend's length) and END_STREAM, no DATA."""
        world = World(self)
        client = H2Client(world)
        sid = client.request(b"HEAD")
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        client.exchange()
        status, headers, body, ended = client.response(sid)
        self.assertEqual((status, headers[b"content-length"], body, ended), (200, b"5", b"", True))

    def test_chunked_backend_response_is_relayed(self):
        """A chunked backend body arrives as DATA without Content-Length."""
        world = World(self)
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                             b"Connection: keep-alive\r\n\r\n3\r\nabc\r\n")
        backend.dataReceived(b"2\r\nde\r\n0\r\n\r\n")
        client.exchange()
        status, headers, body, ended = client.response(sid)
        self.assertEqual((status, body, ended), (200, b"abcde", True))
        self.assertNotIn(b"transfer-encoding", headers)
        self.assertNotIn(b"connection", headers)


class MalformedTests(unittest.TestCase):
    def _reset_code(self, fields, end=True):
        world = World(self)
        client = H2Client(world)
        sid = client.h2.get_next_available_stream_id()
        client.h2.send_headers(sid, fields, end_stream=end)
        client.exchange()
        self.assertEqual(world.pending_connects, 0, "nothing reached a backend")
        self.assertIsNone(client.goaway(), "a stream error, not a connection error")
        resets = client.resets(sid)
        return resets[0].error_code if resets else client.response(sid)[0]

    BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"),
            (b":path", b"/")]

    def test_connection_specific_header_resets_the_stream(self):
        """Connection / Transfer-Encoding / Upgrade in a request: RST_STREAM PROTOCOL_ERROR."""
        for name in (b"connection", b"transfer-encoding", b"upgrade", b"keep-alive"):
            self.assertEqual(self._reset_code(self.BASE + [(name, b"x")]),
                             ErrorCodes.PROTOCOL_ERROR, name)

    def test_missing_method_resets_the_stream(self):
        self.assertEqual(self._reset_code(self.BASE[1:]), ErrorCodes.PROTOCOL_ERROR)

    def test_content_length_without_body_resets_the_stream(self):
        """Content-Length: 5 on a HEADERS frame that ends the stream is malformed."""
        self.assertEqual(self._reset_code(self.BASE + [(b"content-length", b"5")]),
                         ErrorCodes.PROTOCOL_ERROR)

    def test_long_path_is_414(self):
        """A :path over max_request_line is answered 414, as over HTTP/1.1."""
        fields = self.BASE[:3] + [(b":path", b"/" + b"a" * 9000)]
        self.assertEqual(self._reset_code(fields), 414)
