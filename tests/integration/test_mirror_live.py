"""Mirroring on loopback: the mirror pool gets a marked copy, the client's answer never
waits for it (a mirror that never answers), copies in flight are bounded, large bodies are
not copied."""

from __future__ import annotations

import json

from twisted.internet import defer, protocol
from twisted.trial import unittest

from tests.integration.support import (
    backend_site, connect, listen, proxy_config, scripted_factory, start_proxy, with_timeout,
)


def _silent(conn, head):
    """A mirror backend that reads requests and never answers."""


class MirrorTests(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.main = listen(backend_site())
        self.addCleanup(self.main.stopListening)
        self.mirror_log = []

    def _mirror_backend(self, script):
        factory = scripted_factory(script, self.mirror_log)
        build = factory.buildProtocol
        closed = []

        def tracked(addr):
            proto = build(addr)
            done = defer.Deferred()
            closed.append(done)
            lost = proto.connectionLost

            def connection_lost(reason=None):
                lost(reason)
                done.callback(None)

            proto.connectionLost = connection_lost
            return proto

        factory.buildProtocol = tracked
        port = listen(factory)

        def close_all():
            # copies still waiting at the end of a test: cut them from the backend's side
            for entry in self.mirror_log:
                if entry[0] == "connect":
                    entry[1].transport.abortConnection()
            return defer.gatherResults(closed + [port.stopListening()])

        self.addCleanup(close_all)
        return port.getHost().port

    def _config(self, mirror_port, **route):
        data = proxy_config([self.main.getHost().port])
        data["pools"]["shadow"] = {"members": ["http://127.0.0.1:%d" % mirror_port],
                                   "first_byte_timeout": 30, "retries": 0}
        data["routes"] = [dict({"name": "app", "pool": "main", "mirror": "shadow"}, **route)]
        return data

    @defer.inlineCallbacks
    def _request(self, port, raw):
        client = yield connect(port)
        client.transport.write(raw)
        [(head, body)] = yield with_timeout(client.responses(1))
        client.transport.loseConnection()
        return head, body

    @defer.inlineCallbacks
    def _until(self, predicate, what):
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(500):  # bounded: 5 s
            if predicate():
                return
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("never happened: " + what)

    def _requests_seen(self):
        return [entry[1] for entry in self.mirror_log if entry[0] == "request"]

    @defer.inlineCallbacks
    def test_the_mirror_gets_a_marked_copy_and_its_answer_is_dropped(self):
        """A POST is answered by the main pool; the mirror receives the same request, body
        and request id, marked, and its own answer (a 500) reaches nobody."""
        def answer(conn, head):
            conn.transport.write(b"HTTP/1.1 500 Oops\r\ncontent-length: 4\r\n\r\nnope")

        service, port = yield start_proxy(self, self._config(self._mirror_backend(answer)))
        head, body = yield self._request(
            port, b"POST /echo?x=1 HTTP/1.1\r\nHost: app.test\r\nx-request-id: r-1\r\n"
                  b"content-length: 5\r\n\r\nhello")
        self.assertEqual(head.status, 200)
        self.assertEqual(json.loads(body)["body"], "hello")
        yield self._until(lambda: self._requests_seen(), "a mirrored request")
        [copy] = self._requests_seen()
        self.assertTrue(copy.startswith(b"POST /echo?x=1 HTTP/1.1\r\n"))
        self.assertIn(b"\r\nx-revproxy-mirror: 1\r\n", copy)
        self.assertIn(b"\r\nhost: app.test\r\n", copy.lower())
        self.assertTrue(copy.endswith(b"\r\n\r\nhello"))
        stage = service.runtime.route_plans["app"].mirror
        yield self._until(lambda: stage.in_flight == 0, "the mirror's answer")
        self.assertEqual((stage.counts["sent"], stage.counts["answered"]), (1, 1))

    @defer.inlineCallbacks
    def test_a_mirror_that_never_answers_does_not_delay_the_client(self):
        """The client has its whole answer while the copy still waits for the mirror (30 s
        first-byte timeout): nothing the client gets waits on the mirror."""
        service, port = yield start_proxy(self, self._config(self._mirror_backend(_silent)))
        stage = service.runtime.route_plans["app"].mirror
        for _ in range(3):  # sequential clients
            head, _ = yield self._request(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(head.status, 200)
        self.assertEqual(stage.counts["sent"], 3)
        self.assertEqual(stage.in_flight, 3)  # none of them answered, all clients served
        self.assertEqual(stage.counts["answered"] + stage.counts["failed"], 0)

    @defer.inlineCallbacks
    def test_a_dead_mirror_pool_does_not_fail_the_client(self):
        """Nothing listens on the mirror's port: the client is served, the copy fails."""
        dead = listen(protocol.Factory())
        dead_port = dead.getHost().port
        yield dead.stopListening()
        service, port = yield start_proxy(self, self._config(dead_port))
        head, _ = yield self._request(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(head.status, 200)
        stage = service.runtime.route_plans["app"].mirror
        yield self._until(lambda: stage.counts["failed"] == 1, "the copy's failure")
        self.assertEqual(stage.in_flight, 0)

    @defer.inlineCallbacks
    def test_copies_in_flight_are_bounded(self):
        """With mirror_max_in_flight = 2 and a mirror that never answers, the third and
        fourth requests are not copied (counted busy); the clients are all served."""
        service, port = yield start_proxy(self, self._config(
            self._mirror_backend(_silent), mirror_max_in_flight=2))
        stage = service.runtime.route_plans["app"].mirror
        for _ in range(4):
            head, _ = yield self._request(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            self.assertEqual(head.status, 200)
        self.assertEqual((stage.counts["sent"], stage.counts["busy"]), (2, 2))
        yield self._until(lambda: len(self._requests_seen()) == 2, "two copies")

    @defer.inlineCallbacks
    def test_large_bodies_are_not_copied(self):
        """A body over mirror_max_body goes to the main pool only (counted)."""
        service, port = yield start_proxy(self, self._config(
            self._mirror_backend(_silent), mirror_max_body=4))
        head, body = yield self._request(
            port, b"POST /echo HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nhello")
        self.assertEqual(head.status, 200)
        stage = service.runtime.route_plans["app"].mirror
        self.assertEqual((stage.counts["sent"], stage.counts["body-too-large"]), (0, 1))

    @defer.inlineCallbacks
    def test_counters_on_the_admin_status_and_across_a_reload(self):
        """GET /api/status on the admin site shows the route's mirror counts; a SIGHUP-style
        reload that leaves the route's mirror settings alone keeps them."""
        from revproxy.admin.status import admin_site
        from revproxy.config.load import parse_config

        def answer(conn, head):
            conn.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

        data = self._config(self._mirror_backend(answer))
        service, port = yield start_proxy(self, data)
        head, _ = yield self._request(port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(head.status, 200)
        stage = service.runtime.route_plans["app"].mirror
        yield self._until(lambda: stage.counts["answered"] == 1, "the mirror's answer")

        data["limits"] = {"header_timeout": 9}
        self.assertTrue(service.reloader.reload(lambda: parse_config(data, "<test>")))
        admin = listen(admin_site(service._holder))
        self.addCleanup(admin.stopListening)
        client = yield connect(admin.getHost().port)
        client.transport.write(b"GET /api/status HTTP/1.1\r\nHost: admin\r\n"
                               b"Connection: close\r\n\r\n")
        [(head, body)] = yield with_timeout(client.responses(1))
        self.assertEqual(head.status, 200, body)
        mirrors = json.loads(body)["mirrors"]
        self.assertEqual(mirrors["app"]["pool"], "shadow")
        self.assertEqual((mirrors["app"]["counts"]["sent"], mirrors["app"]["counts"]["answered"],
                          mirrors["app"]["in_flight"]), (1, 1, 0))
