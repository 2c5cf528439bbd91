"""Upstream integrity on warm pools: retries onto pooled connections, early answers to uploads."""

from __future__ import annotations

from twisted.trial import unittest

from tests.unit.world import World, config_dict

TWO = ("http://10.0.0.1:80", "http://10.0.0.2:80")
GET = b"GET /flaky HTTP/1.1\r\nHost: a\r\n\r\n"
OK_Y = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok y"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"


class RetryOntoPooledConnectionTests(unittest.TestCase):
    def warm(self, world, proto, client):
        """One request on each member, answered 200: both keep an idle pooled connection."""
        backends = {}
        for _ in range(2):
            proto.dataReceived(GET)
            backend, upstream = world.accept_backend()
            backends[upstream.getPeer().host] = (backend, upstream)
            backend.dataReceived(OK_Y)
            self.assertTrue(client.take().startswith(b"HTTP/1.1 200 OK"))
        members = world.runtime.backends["main"].members
        self.assertEqual([m.idle for m in members], [1, 1])
        return backends

    def test_5xx_retried_onto_idle_pooled_connection_answers_cleanly(self):
        """A 503 retried onto a member with an idle pooled connection: the client gets the
        other member's whole answer, the retried connection is not aborted, the connection
        stays usable (regression: the old exchange's abort hit the new connection)."""
        world = World(self, config_dict(members=TWO, pool={"retries": 1, "retry_on": [503]}))
        proto, client = world.client()
        backends = self.warm(world, proto, client)
        proto.dataReceived(GET)
        sent_to = [host for host, (_, up) in backends.items() if up.value().count(b"GET /flaky") == 2]
        self.assertEqual(len(sent_to), 1)
        first = sent_to[0]
        other = [h for h in backends if h != first][0]
        backends[first][0].dataReceived(BUSY)
        self.assertTrue(backends[first][1].aborted, "the 503 connection is dropped")
        backend_y, upstream_y = backends[other]
        self.assertEqual(upstream_y.value().count(b"GET /flaky"), 2, "retried on the pooled one")
        self.assertFalse(upstream_y.aborted, "the retried connection is alive")
        backend_y.dataReceived(OK_Y)
        answer = client.take()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\nok y"), answer)
        self.assertEqual(world.pending_connects, 0)

    def test_5xx_retry_then_next_request_in_sync(self):
        """After such a retry, the next request on the same client connection is answered."""
        world = World(self, config_dict(members=TWO, pool={"retries": 1, "retry_on": [503]}))
        proto, client = world.client()
        backends = self.warm(world, proto, client)
        proto.dataReceived(GET)
        first = [h for h, (_, up) in backends.items() if up.value().count(b"GET /flaky") == 2][0]
        other = [h for h in backends if h != first][0]
        backends[first][0].dataReceived(BUSY)
        backends[other][0].dataReceived(OK_Y)
        answer = client.take()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer)
        self.assertTrue(answer.endswith(b"\r\n\r\nok y"), answer)
        self.assertNotIn(b"busy", answer)
        proto.dataReceived(GET)
        self.assertFalse(client.disconnecting)


class EarlyAnswerToUploadTests(unittest.TestCase):
    BIG = 2 * 1024 * 1024

    def post(self, proto):
        proto.dataReceived(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % self.BIG)
        proto.dataReceived(b"x" * self.BIG)

    def test_connection_with_half_sent_body_is_not_pooled(self):
        """A backend answering before the spooled body was written whole: that connection is
        closed, never reused; the next request gets a fresh one (regression: request capture)."""
        world = World(self, config_dict(buffering={"request_memory": 65536}))
        proto, client = world.client()
        self.post(proto)
        backend, upstream = world.accept_backend()
        self.assertLess(len(upstream.value()), self.BIG, "the body streams from the spool")
        backend.dataReceived(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(client.take().startswith(b"HTTP/1.1 401 "))
        self.assertTrue(upstream.disconnecting or upstream.aborted, "not left open")
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 0, "not pooled")
        proto.dataReceived(GET)
        self.assertEqual(world.pending_connects, 1, "the next request opens a new connection")

    def test_connection_with_whole_body_is_pooled(self):
        """The same early answer after a body sent whole (in memory): the connection is reused."""
        world = World(self)
        proto, client = world.client()
        proto.dataReceived(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().endswith(b"\r\n\r\nabc"))
        backend.dataReceived(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(world.runtime.backends["main"].members[0].idle, 1)
