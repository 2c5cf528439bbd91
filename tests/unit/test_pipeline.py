"""The request path on a fake reactor: deadlines, pooling, retries, tunnels, headers."""

from __future__ import annotations

from twisted.internet import error
from twisted.trial import unittest

from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class DeadlineTests(unittest.TestCase):
    def test_request_head_must_arrive_within_header_timeout(self):
        """A client that sends half a head gets 408 and is closed after header_timeout."""
        world = World(self, config_dict(limits={"header_timeout": 5}))
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHo")
        world.reactor.advance(4.9)
        self.assertEqual(client.value(), b"")
        world.reactor.advance(0.5)  # deadlines are checked every 0.25 s
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        self.assertTrue(client.disconnecting)

    def test_idle_keepalive_connection_closes_after_idle_timeout(self):
        """After a response, a silent keep-alive connection lives idle_timeout, then closes."""
        world = World(self, config_dict(limits={"idle_timeout": 30, "header_timeout": 5}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        self.assertIn(b"200 OK", client.take())
        world.reactor.advance(29)
        self.assertFalse(client.disconnecting)
        world.reactor.advance(2)
        self.assertTrue(client.disconnecting)
        self.assertEqual(client.value(), b"")

    def test_slow_request_body_gets_408(self):
        """A body that stops arriving for body_timeout is answered 408 and closed."""
        world = World(self, config_dict(limits={"body_timeout": 10, "min_request_rate": 0}))
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
        world.reactor.advance(9)
        proto.dataReceived(b"6")  # progress restarts the clock
        world.reactor.advance(9)
        self.assertEqual(client.value(), b"")
        world.reactor.advance(2)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 408 "))
        self.assertEqual(world.pending_connects, 0, "nothing reached a backend")

    def test_connect_timeout_is_504(self):
        """A backend that never accepts within connect_timeout gives 504."""
        world = World(self, config_dict(pool={"connect_timeout": 3}))
        proto, client = world.client()
        proto.dataReceived(GET)
        world.reactor.advance(3.1)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 504 "))

    def test_connection_refused_is_502(self):
        """A refused connect gives 502 with the keep-alive connection still usable."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        world.fail_connect(error.ConnectionRefusedError())
        self.assertTrue(client.value().startswith(b"HTTP/1.1 502 "))
        self.assertFalse(client.disconnecting)

    def test_first_byte_timeout_is_504(self):
        """No response head within first_byte_timeout: 504, backend connection dropped."""
        world = World(self, config_dict(pool={"first_byte_timeout": 7}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        world.reactor.advance(6.9)
        self.assertEqual(client.value(), b"")
        world.reactor.advance(0.5)  # deadlines are checked every 0.25 s
        self.assertTrue(client.value().startswith(b"HTTP/1.1 504 "))
        self.assertTrue(upstream.aborted)

    def test_read_timeout_mid_body_aborts_client(self):
        """A backend silent mid-body for read_timeout: the client connection is cut."""
        world = World(self, config_dict(pool={"read_timeout": 4}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        world.reactor.advance(3)
        backend.dataReceived(b"d")
        world.reactor.advance(3)
        self.assertFalse(client.disconnecting)
        world.reactor.advance(1.1)
        self.assertTrue(client.disconnecting)
        self.assertTrue(upstream.aborted)

    def test_client_not_reading_is_cut_after_send_timeout(self):
        """A client whose socket stays full for send_timeout is aborted."""
        world = World(self, config_dict(limits={"send_timeout": 20, "min_response_rate": 0}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        proto.pauseProducing()  # what the transport does when its buffer is full
        world.reactor.advance(19)
        self.assertFalse(client.aborted)
        world.reactor.advance(2)
        self.assertTrue(client.aborted)


class PoolingTests(unittest.TestCase):
    def test_backend_connection_reused_and_idle_closed(self):
        """The pooled connection serves the next request, then closes after pool idle_timeout."""
        world = World(self, config_dict(pool={"idle_timeout": 50}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        proto.dataReceived(GET)
        self.assertEqual(world.pending_connects, 0, "no new backend connection")
        self.assertEqual(upstream.value().count(b"GET /x"), 2)
        backend.dataReceived(OK)
        world.reactor.advance(49)
        self.assertFalse(upstream.disconnecting)
        world.reactor.advance(2)
        self.assertTrue(upstream.disconnecting)

    def test_connection_closed_when_backend_says_close(self):
        """Connection: close from the backend: the connection is not pooled."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        self.assertTrue(upstream.disconnecting)
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 0)

    def test_retry_once_on_reused_connection_closed(self):
        """A reused connection closed before any response byte: one retry on a fresh one."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        client.clear()
        proto.dataReceived(GET)
        backend.connectionLost(error.ConnectionDone())
        self.assertEqual(world.pending_connects, 1)
        backend2, upstream2 = world.accept_backend()
        self.assertIn(b"GET /x", upstream2.value())
        backend2.dataReceived(OK)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 200 OK"))

    def test_fresh_connection_closed_is_502_not_retried(self):
        """A brand-new connection closed without answer is not retried: 502."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.connectionLost(error.ConnectionDone())
        self.assertEqual(world.pending_connects, 0)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 502 "))

    def test_extra_bytes_after_response_drop_connection(self):
        """Bytes beyond the declared length: the response is cut at its length and the
        connection is not reused (its framing is broken)."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK + b"HTTP/1.1 200 OK\r\n")
        self.assertTrue(client.value().endswith(b"\r\n\r\nok"))
        self.assertTrue(upstream.disconnecting or upstream.aborted)
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 0)

    def test_max_idle_per_member(self):
        """No more than max_idle_per_member connections stay pooled."""
        world = World(self, config_dict(pool={"max_idle_per_member": 1}))
        a, client_a = world.client()
        b, client_b = world.client()
        a.dataReceived(GET)
        b.dataReceived(GET)
        backend_a, upstream_a = world.accept_backend()
        backend_b, upstream_b = world.accept_backend()
        backend_a.dataReceived(OK)
        backend_b.dataReceived(OK)
        member = world.runtime.backends["main"].members[0]
        self.assertEqual(member.idle, 1)
        self.assertTrue(upstream_b.disconnecting)


class HeaderAndRoutingTests(unittest.TestCase):
    def test_hop_by_hop_stripped_both_ways(self):
        """Connection-named and fixed hop-by-hop headers never cross the proxy."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret\r\nX-Secret: 1\r\n"
                           b"Keep-Alive: 5\r\nTE: trailers\r\nX-Keep: yes\r\n\r\n")
        backend, upstream = world.accept_backend()
        sent = upstream.value().lower()
        for name in (b"x-secret", b"keep-alive", b"te:", b"connection"):
            self.assertNotIn(name, sent)
        self.assertIn(b"x-keep: yes", sent)
        backend.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: x-internal\r\nX-Internal: 1\r\n"
                             b"Keep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n")
        answer = client.value().lower()
        self.assertNotIn(b"x-internal", answer)
        self.assertNotIn(b"keep-alive", answer)

    def test_loop_is_508(self):
        """A request whose Via already names this proxy is refused with 508."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 revproxy\r\n\r\n")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 508 "))
        self.assertEqual(world.pending_connects, 0)

    def test_request_id_generated_unless_trusted(self):
        """X-Request-ID from an untrusted client is replaced; a trusted proxy's is kept."""
        world = World(self, config_dict(server={"trusted_proxies": ["10.9.0.0/16"]}))
        proto, client = world.client(("192.0.2.1", 1))
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: evil\r\n\r\n")
        backend, upstream = world.accept_backend()
        self.assertIn(b"x-request-id: " + b"02" * 16, upstream.value())
        proto2, client2 = world.client(("10.9.1.1", 1))
        proto2.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: abc-123\r\n\r\n")
        backend2, upstream2 = world.accept_backend()
        self.assertIn(b"x-request-id: abc-123", upstream2.value())

    def test_routes_by_host_path_and_method_else_404(self):
        """First matching route wins; no route gives 404 and the connection stays open."""
        routes = [
            {"name": "api", "hosts": ["api.test"], "path_prefix": "/v1/", "pool": "api"},
            {"name": "posts", "methods": ["POST"], "pool": "api"},
            {"name": "www", "hosts": ["*.example.test"], "pool": "main"},
        ]
        data = config_dict(routes=routes)
        data["pools"]["api"] = {"members": ["http://10.0.0.2:9000"]}
        world = World(self, data)
        proto, client = world.client()
        proto.dataReceived(b"GET /v1/x HTTP/1.1\r\nHost: API.test\r\n\r\n")
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.2", 9000))
        proto2, client2 = world.client()
        proto2.dataReceived(b"GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.1", 8000))
        proto3, client3 = world.client()
        proto3.dataReceived(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        self.assertTrue(client3.value().startswith(b"HTTP/1.1 404 "))
        self.assertFalse(client3.disconnecting)

    def test_host_header_rewritten_per_route(self):
        """A route with host_header sends that Host upstream; X-Forwarded-Host keeps the original."""
        data = config_dict(routes=[{"pool": "main", "host_header": "internal.svc"}])
        world = World(self, data)
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: public.test\r\n\r\n")
        backend, upstream = world.accept_backend()
        sent = upstream.value()
        self.assertIn(b"host: internal.svc\r\n", sent)
        self.assertIn(b"x-forwarded-host: public.test\r\n", sent)

    def test_original_target_sent_upstream(self):
        """Routing uses the normalised path; the backend receives the target as sent."""
        world = World(self, config_dict(routes=[{"path_prefix": "/app/", "pool": "main"}]))
        proto, client = world.client()
        proto.dataReceived(b"GET /static/../app/%7Euser HTTP/1.1\r\nHost: a\r\n\r\n")
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().startswith(b"GET /static/../app/%7Euser HTTP/1.1\r\n"))

    def test_encoded_slash_refused(self):
        """%2F in the path is refused with 400 by default."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 400 "))


class InterimAndUpgradeTests(unittest.TestCase):
    def test_early_hints_relayed_and_100_swallowed(self):
        """A backend's 103 reaches the client; its stray 100 does not (the proxy sent its own)."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                             b"Link: </a.css>; rel=preload\r\n\r\n" + OK)
        answer = client.value()
        self.assertNotIn(b"100 Continue", answer)
        self.assertTrue(answer.startswith(b"HTTP/1.1 103 Early Hints\r\n"))
        self.assertIn(b"link: </a.css>; rel=preload", answer)
        self.assertIn(b"HTTP/1.1 200 OK", answer)

    def test_websocket_upgrade_tunnels_both_ways(self):
        """After the backend's 101, bytes flow untouched in both directions."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                           b"Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n")
        backend, upstream = world.accept_backend()
        sent = upstream.take()
        self.assertIn(b"connection: upgrade", sent)
        self.assertIn(b"upgrade: websocket", sent)
        backend.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n\x81\x02hi")
        answer = client.take()
        self.assertTrue(answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"))
        self.assertTrue(answer.endswith(b"\r\n\r\n\x81\x02hi"))
        proto.dataReceived(b"\x81\x82frame")
        self.assertEqual(upstream.value(), b"\x81\x82frame")
        backend.dataReceived(b"\x88\x00")
        self.assertEqual(client.value(), b"\x88\x00")

    def test_h2c_upgrade_is_ignored(self):
        """An h2c upgrade is served as plain HTTP/1.1: Upgrade never reaches the backend."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        backend, upstream = world.accept_backend()
        sent = upstream.value().lower()
        self.assertNotIn(b"upgrade", sent)
        self.assertNotIn(b"http2-settings", sent)

    def test_unrequested_101_is_502(self):
        """A 101 to a request that asked for no upgrade is a bad gateway."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 502 "))


class ConnectionLimitTests(unittest.TestCase):
    def test_connection_ceiling(self):
        """Connections beyond max_connections are closed at once; a freed slot is reused."""
        world = World(self, config_dict(limits={"max_connections": 2}))
        first, t1 = world.client()
        second, t2 = world.client()
        third, t3 = world.client()
        self.assertTrue(t3.aborted)
        self.assertFalse(t1.aborted or t2.aborted)
        first.connectionLost(error.ConnectionDone())
        fourth, t4 = world.client()
        self.assertFalse(t4.aborted)

    def test_pipelined_input_beyond_limit_pauses_reading(self):
        """While a request is in flight, buffered pipelined bytes over the limit pause reading."""
        world = World(self, config_dict(limits={"max_pipeline_bytes": 100}))
        proto, client = world.client()
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        proto.dataReceived(GET * 4)  # 132 bytes waiting; 99 once the next one is parsed
        self.assertTrue(client.reading_paused)
        backend.dataReceived(OK)
        self.assertFalse(client.reading_paused)


class ShutdownTests(unittest.TestCase):
    def test_graceful_shutdown_finishes_in_flight_and_closes_idle(self):
        """SIGTERM: idle connections close at once, a request in flight completes (with
        Connection: close), new connections are refused, then the stop Deferred fires."""
        world = World(self, config_dict(server={"shutdown_timeout": 30}))
        busy, busy_t = world.client()
        idle, idle_t = world.client()
        busy.dataReceived(GET)
        backend, upstream = world.accept_backend()
        stopped = world.service.stopService()
        self.assertTrue(idle_t.disconnecting)
        self.assertFalse(busy_t.disconnecting)
        idle.connectionLost(error.ConnectionDone())
        late, late_t = world.client()
        self.assertTrue(late_t.aborted)
        self.assertNoResult(stopped)
        backend.dataReceived(OK)
        self.assertIn(b"connection: close", busy_t.value())
        self.assertTrue(busy_t.disconnecting)
        busy.connectionLost(error.ConnectionDone())
        self.successResultOf(stopped)

    def test_shutdown_deadline_aborts_stragglers(self):
        """Requests still running after shutdown_timeout are aborted and the stop completes."""
        world = World(self, config_dict(server={"shutdown_timeout": 10}))
        busy, busy_t = world.client()
        busy.dataReceived(GET)
        world.accept_backend()
        stopped = world.service.stopService()
        world.reactor.advance(9)
        self.assertNoResult(stopped)
        world.reactor.advance(2)
        self.assertTrue(busy_t.aborted)
        self.successResultOf(stopped)


class ErrorLogTests(unittest.TestCase):
    def capture(self):
        from twisted.logger import formatEvent, globalLogPublisher

        lines = []

        def observer(event):
            if event.get("log_namespace", "").startswith("revproxy"):
                lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return lines

    def test_502_reason_logged_with_request_id(self):
        """A refused backend connection: the error log names the request id, member and why."""
        lines = self.capture()
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(GET)
        world.fail_connect(error.ConnectionRefusedError())
        [line] = [l for l in lines if "502" in l]
        self.assertIn("rid=" + "02" * 16, line)
        self.assertIn("10.0.0.1:8000", line)
        self.assertIn("connect-failed", line)

    def test_bad_request_reason_logged(self):
        """A malformed request is logged with the specific reason it was refused."""
        lines = self.capture()
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertTrue(client.value().startswith(b"HTTP/1.1 400 "))
        self.assertTrue(any("400" in l and "Content-Length" in l for l in lines), lines)


class NextMemberTests(unittest.TestCase):
    def test_connect_failure_moves_to_next_member(self):
        """A refused connect sends the request (even a POST) to another member; 502 only
        when every member refused."""
        world = World(self, config_dict(members=("http://10.0.0.1:80", "http://10.0.0.2:80")))
        proto, client = world.client()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz")
        world.fail_connect(error.ConnectionRefusedError())
        self.assertEqual(world.reactor.tcpClients[-1][:2], ("10.0.0.2", 80))
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().endswith(b"\r\n\r\nz"))
        backend.dataReceived(OK)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 200 OK"))
        proto.dataReceived(GET)
        if world.pending_connects:  # the policy tried 10.0.0.1 again: it refuses again
            world.fail_connect(error.ConnectionRefusedError())
        self.assertIn(b"GET /x", upstream.value(), "served on 10.0.0.2's pooled connection")
        backend.dataReceived(OK)
        self.assertTrue(client.take().startswith(b"HTTP/1.1 200 OK"))

    def test_every_member_refusing_is_502(self):
        """With every member refusing, the client gets one 502 after each was tried once."""
        world = World(self, config_dict(members=("http://10.0.0.1:80", "http://10.0.0.2:80")))
        proto, client = world.client()
        proto.dataReceived(GET)
        world.fail_connect(error.ConnectionRefusedError())
        world.fail_connect(error.ConnectionRefusedError())
        self.assertEqual(world.pending_connects, 0)
        self.assertTrue(client.value().startswith(b"HTTP/1.1 502 "))


class TargetFormTests(unittest.TestCase):
    def forwarded_line(self, raw):
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(raw)
        backend, upstream = world.accept_backend()
        return upstream.value().split(b"\r\n")

    def test_absolute_form_becomes_origin_form(self):
        """An absolute-form target reaches the origin as path and query, its authority as Host."""
        lines = self.forwarded_line(b"GET http://a.test:8080/p/q?x=1 HTTP/1.1\r\nHost: a.test:8080\r\n\r\n")
        self.assertEqual(lines[0], b"GET /p/q?x=1 HTTP/1.1")
        self.assertIn(b"host: a.test:8080", lines)

    def test_absolute_form_without_path(self):
        """http://host?q and http://host become /?q and /."""
        self.assertEqual(self.forwarded_line(b"GET http://a.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n")[0],
                         b"GET /?q HTTP/1.1")
        self.assertEqual(self.forwarded_line(b"GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n")[0],
                         b"GET / HTTP/1.1")

    def test_asterisk_form_kept(self):
        """OPTIONS * is forwarded as is."""
        self.assertEqual(self.forwarded_line(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")[0],
                         b"OPTIONS * HTTP/1.1")
