"""HTTP/2 to clients on a fake reactor: an h2 client drives ``H2ServerConnection`` against
fake backends; the same pipeline as HTTP/1.1 answers."""

from __future__ import annotations

import h2.events
from h2.errors import ErrorCodes
from twisted.trial import unittest

from tests.unit.h2world import H2Client, backend_request, read_frames
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

    def test_refused_request_has_an_access_log_line(self):
        """A 431 on a stream is logged like HTTP/1.1's refusals: method, target, status."""
        access = []
        data = config_dict()
        data["logging"]["access_log"] = "-"
        world = World(self, data, access=access)
        client = H2Client(world)
        sid = client.request(headers=[(b"x-%d" % i, b"v") for i in range(101)])
        client.exchange()
        self.assertEqual(client.response(sid)[0], 431)
        self.assertEqual([(r.method, r.target, r.version, r.status) for r in access],
                         [(b"GET", b"/x", b"2", 431)])


class SinkContractTests(unittest.TestCase):
    def test_stream_sink_provides_the_response_sink_interface(self):
        from zope.interface.verify import verifyObject

        from revproxy.http2.stream import StreamSink
        from revproxy.interfaces import IResponseSink

        world = World(self)
        client = H2Client(world)
        self.assertTrue(verifyObject(IResponseSink, StreamSink(client.proto, 1, b"GET")))


def _big_response(n):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n


class FlowControlTests(unittest.TestCase):
    def test_slow_reader_gets_only_its_window_and_backend_is_freed(self):
        """A client with a 1000-byte window receives 1000 bytes; the rest spools in the proxy
        and the backend connection returns to the pool at once (spoon-feeding); each
        WINDOW_UPDATE lets more through until the whole body has arrived."""
        world = World(self)
        client = H2Client(world, window=1000)
        client.auto_ack = False
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(_big_response(200000))
        client.exchange()
        self.assertEqual(len(client.response(sid)[2]), 1000)
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 1,
                         "backend connection pooled while the client is still reading")
        self.assertFalse(upstream.disconnecting)
        for _ in range(400):
            got = len(client.response(sid)[2])
            if client.response(sid)[3]:
                break
            client.h2.acknowledge_received_data(1000, sid)
            client.h2.increment_flow_control_window(1000)  # the connection window too
            client.exchange()
            self.assertLessEqual(len(client.response(sid)[2]) - got, 1000)
        status, headers, body, ended = client.response(sid)
        self.assertEqual((len(body), ended), (200000, True))

    def test_request_body_window_is_given_back(self):
        """A request body larger than the stream window still arrives: the proxy
        acknowledges DATA as it spools it."""
        world = World(self, config_dict(http2={"initial_window_size": 4096}))
        client = H2Client(world)
        sid = client.request(b"PUT", body=None, end=False)
        client.exchange()
        body = b"y" * 50000
        sent = 0
        for _ in range(100):
            window = min(client.h2.local_flow_control_window(sid), len(body) - sent,
                         client.h2.max_outbound_frame_size)
            if window:
                client.h2.send_data(sid, body[sent:sent + window])
                sent += window
            if sent == len(body):
                client.h2.end_stream(sid)
                client.exchange()
                break
            client.exchange()
        self.assertEqual(sent, len(body))
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().endswith(body))
        self.assertIn(b"content-length: 50000", upstream.value())

    def test_transport_pause_holds_the_stream_producers(self):
        """When the transport is full, stream writes wait: the response spools, and flows
        when the transport resumes."""
        world = World(self)
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        client.proto.pauseProducing()
        backend.dataReceived(_big_response(50000))
        client.exchange()
        self.assertEqual(client.response(sid)[2], b"")
        client.proto.resumeProducing()
        client.exchange()
        self.assertEqual(len(client.response(sid)[2]), 50000)

    def test_window_blocked_stream_is_reset_after_send_timeout(self):
        """A client that never opens its window loses the stream after send_timeout."""
        world = World(self, config_dict(limits={"send_timeout": 20}))
        client = H2Client(world, window=10)
        client.auto_ack = False
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(_big_response(100))
        world.reactor.advance(19)
        client.exchange()
        self.assertEqual(client.resets(sid), [])
        world.reactor.advance(2)
        client.exchange()
        self.assertEqual(client.resets(sid)[0].error_code, ErrorCodes.CANCEL)
        self.assertIsNone(client.goaway())


class AttackTests(unittest.TestCase):
    def test_rapid_reset_is_goawayed(self):
        """Streams opened and reset at once, past max_resets_per_minute: GOAWAY
        ENHANCE_YOUR_CALM and the connection closed; the reset streams' backend work stops."""
        world = World(self, config_dict(http2={"max_resets_per_minute": 10}))
        client = H2Client(world)
        for _ in range(10):
            sid = client.request()
            client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.exchange()
        self.assertIsNone(client.goaway())
        self.assertFalse(client.transport.disconnecting)
        sid = client.request()
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.exchange()
        self.assertEqual(client.goaway().error_code, ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertTrue(client.transport.disconnecting)

    def test_resets_age_out_of_the_window(self):
        """Resets spread over more than a minute do not add up."""
        world = World(self, config_dict(http2={"max_resets_per_minute": 5},
                                        limits={"idle_timeout": 1000}))
        client = H2Client(world)
        for _ in range(4):
            for _ in range(5):
                sid = client.request()
                client.h2.reset_stream(sid, ErrorCodes.CANCEL)
            client.exchange()
            world.reactor.advance(61)
        self.assertIsNone(client.goaway())

    def test_reset_stream_cancels_its_backend_exchange(self):
        """A stream reset while its backend answers: the backend connection is closed,
        never pooled half-read, and the connection keeps serving."""
        world = World(self)
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        client.h2.reset_stream(sid, ErrorCodes.CANCEL)
        client.exchange()
        self.assertTrue(upstream.disconnecting or upstream.aborted)
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 0)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        client.exchange()
        self.assertEqual(client.response(sid)[0], 200)

    def test_continuation_flood_is_goawayed(self):
        """HEADERS without END_HEADERS then endless CONTINUATION frames: GOAWAY and close
        after max_continuation_frames."""
        from hyperframe.frame import ContinuationFrame, HeadersFrame

        world = World(self, config_dict(http2={"max_continuation_frames": 5}))
        client = H2Client(world)
        headers = HeadersFrame(1)
        headers.data = client.h2.encoder.encode([(b":method", b"GET")])
        client.proto.dataReceived(headers.serialize())
        for i in range(5):
            frame = ContinuationFrame(1)
            frame.data = b"\x40\x01a\x01b"  # literal field a: b, over and over
            client.proto.dataReceived(frame.serialize())
        self.assertFalse(client.transport.disconnecting)
        client.proto.dataReceived(frame.serialize())
        self.assertTrue(client.transport.disconnecting)
        client.receive(client.transport.take())
        self.assertEqual(client.goaway().error_code, ErrorCodes.ENHANCE_YOUR_CALM)

    def test_header_block_bytes_are_capped(self):
        """A header block over max_header_block_size ends the connection with GOAWAY."""
        from hyperframe.frame import ContinuationFrame, HeadersFrame

        world = World(self, config_dict(http2={"max_header_block_size": 4096}))
        client = H2Client(world)
        headers = HeadersFrame(1)
        headers.data = b"\x00" * 3000
        client.proto.dataReceived(headers.serialize())
        self.assertFalse(client.transport.disconnecting)
        frame = ContinuationFrame(1)
        frame.data = b"\x00" * 2000
        client.proto.dataReceived(frame.serialize())
        self.assertTrue(client.transport.disconnecting)

    def test_too_many_streams_are_refused(self):
        """Past max_concurrent_streams the client is told off: GOAWAY (h2 treats it as a
        connection error) and no backend work for the stream over the limit."""
        world = World(self, config_dict(http2={"max_concurrent_streams": 2}))
        client = H2Client(world, pump=False)  # has not seen our SETTINGS: sends 3 at once
        for _ in range(3):
            client.request()
        client.exchange()
        self.assertEqual(client.h2.remote_settings.max_concurrent_streams, 2)
        self.assertEqual(client.goaway().error_code, ErrorCodes.PROTOCOL_ERROR)
        self.assertTrue(client.transport.disconnecting)
        self.assertLessEqual(world.pending_connects, 2)


class LifecycleTests(unittest.TestCase):
    def test_graceful_shutdown_sends_goaway_and_finishes_streams(self):
        """stopService: GOAWAY(NO_ERROR) naming the last stream; the stream in flight
        completes; a newer stream is refused; then the connection closes."""
        world = World(self, config_dict(server={"shutdown_timeout": 30}))
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        stopped = world.service.stopService()
        client.exchange()
        goaway = client.goaway()
        self.assertEqual((goaway.error_code, goaway.last_stream_id), (ErrorCodes.NO_ERROR, sid))
        self.assertFalse(client.transport.disconnecting)
        backend.dataReceived(OK)
        # (the h2 client library refuses frames after a GOAWAY: read them raw)
        frames = read_frames(client.transport.take(), client.h2.decoder)
        self.assertEqual(frames, [("HEADERS", sid, [(b":status", b"200")]),
                                  ("DATA", sid, b"ok", True)])
        self.assertTrue(client.transport.disconnecting)
        client.proto.connectionLost(None)
        self.successResultOf(stopped)

    def test_shutdown_closes_idle_h2_connection_at_once(self):
        world = World(self)
        client = H2Client(world)
        world.service.stopService()
        self.assertTrue(client.transport.disconnecting)

    def test_idle_connection_is_closed_with_goaway(self):
        """No stream for idle_timeout: GOAWAY(NO_ERROR) and close."""
        world = World(self, config_dict(limits={"idle_timeout": 30, "header_timeout": 5}))
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        client.exchange()
        world.reactor.advance(29)
        self.assertFalse(client.transport.disconnecting)
        world.reactor.advance(2)
        self.assertTrue(client.transport.disconnecting)
        client.exchange()
        self.assertEqual(client.goaway().error_code, ErrorCodes.NO_ERROR)

    def test_slow_request_body_is_408(self):
        """A request body that stops arriving for body_timeout: 408 on the stream."""
        world = World(self, config_dict(limits={"body_timeout": 10}))
        client = H2Client(world)
        sid = client.request(b"POST", body=b"abc", end=False)
        client.exchange()
        world.reactor.advance(9)
        client.h2.send_data(sid, b"def")
        client.exchange()
        world.reactor.advance(9)
        client.exchange()
        self.assertIsNone(client.response(sid)[0])
        world.reactor.advance(2)
        client.exchange()
        self.assertEqual(client.response(sid)[0], 408)
        self.assertEqual(world.pending_connects, 0)

    def test_client_goaway_cancels_streams_and_closes(self):
        """GOAWAY from the client: its streams' backend work stops, the connection closes."""
        world = World(self)
        client = H2Client(world)
        client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        client.h2.close_connection()
        client.exchange()
        self.assertTrue(client.transport.disconnecting)
        self.assertTrue(upstream.disconnecting or upstream.aborted)
        backend.dataReceived(OK)  # nothing breaks when the backend answers late

    def test_connection_counts_once(self):
        """However many streams, the connection is one entry in the accounting."""
        world = World(self)
        client = H2Client(world)
        for _ in range(3):
            client.request()
        client.exchange()
        self.assertEqual(world.runtime.stats.connections, {client.proto})
        client.proto.connectionLost(None)
        self.assertEqual(world.runtime.stats.connections, set())


class InformationalTests(unittest.TestCase):
    def test_early_hints_then_the_answer(self):
        """A backend's 103 reaches the client as an informational HEADERS, then the 200."""
        world = World(self)
        client = H2Client(world)
        sid = client.request()
        client.exchange()
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        backend.dataReceived(OK)
        client.exchange()
        hints = client.of(h2.events.InformationalResponseReceived, sid)
        self.assertEqual(dict(hints[0].headers)[b":status"], b"103")
        self.assertEqual(client.response(sid)[0::2], (200, b"ok"))

    def test_expect_continue_gets_100_then_the_body_is_read(self):
        """Expect: 100-continue on a stream: 100 once the request is accepted."""
        world = World(self)
        client = H2Client(world)
        sid = client.request(b"POST", headers=[(b"expect", b"100-continue")], end=False)
        client.exchange()
        hints = client.of(h2.events.InformationalResponseReceived, sid)
        self.assertEqual(dict(hints[0].headers)[b":status"], b"100")
        client.h2.send_data(sid, b"abc", end_stream=True)
        client.exchange()
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().endswith(b"\r\n\r\nabc"))
        self.assertNotIn(b"expect", upstream.value().lower())
