"""Upstream integrity over real sockets, after the pools are warm (regressions of issue 7)."""

from __future__ import annotations

from twisted.internet import defer, protocol
from twisted.trial import unittest

from tests.integration.support import (
    connect, listen, proxy_config, scripted_factory, start_proxy, with_timeout,
)


def answer(body, status=b"200 OK"):
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


class EarlyAnswerBackend(protocol.Protocol):
    """Answers 401 as soon as a POST head arrives, then reads and discards the declared body
    (as a correct server does); GETs get 200 "got GET"."""

    def __init__(self, log):
        self._buffer = b""
        self._discard = 0
        self._log = log

    def dataReceived(self, data):
        self._buffer += data
        while True:
            if self._discard:
                take = min(self._discard, len(self._buffer))
                self._discard -= take
                self._buffer = self._buffer[take:]
                if self._discard:
                    return
            if b"\r\n\r\n" not in self._buffer:
                return
            head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
            self._log.append(head.split(b"\r\n")[0])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if head.startswith(b"POST"):
                self.transport.write(answer(b"", b"401 Unauthorized"))
            else:
                self.transport.write(answer(b"got GET"))
            self._discard = length


class IntegrityTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_retry_onto_warm_pool_keeps_client_in_sync(self):
        """x answers 503 (keep-alive), y 200: with warm pools every /flaky answer is y's whole
        200 on the same client connection, never x's raw body."""
        log = []

        def busy(backend, head):
            backend.transport.write(answer(b"busy", b"503 Service Unavailable"))

        def fine(backend, head):
            backend.transport.write(answer(b"ok y"))

        x = listen(scripted_factory(busy, log))
        y = listen(scripted_factory(fine, log))
        self.addCleanup(x.stopListening)
        self.addCleanup(y.stopListening)
        data = proxy_config([x.getHost().port, y.getHost().port])
        data["pools"]["main"].update({"retries": 1, "retry_on": [503], "retry_budget": 1.0})
        service, port = yield start_proxy(self, data)
        client = yield connect(port)
        self.addCleanup(client.transport.loseConnection)
        count = 8
        for i in range(count):
            client.transport.write(b"GET /flaky HTTP/1.1\r\nHost: a\r\n\r\n")
            responses = yield with_timeout(client.responses(i + 1))
        for head, body in responses:
            self.assertEqual((head.status, body), (200, b"ok y"))
        self.assertTrue(client.transport.connected)
        hits_x = sum(1 for kind, _ in log if kind == "request") - count
        self.assertGreater(hits_x, 0, "x was tried (and its 503 retried) at least once")

    @defer.inlineCallbacks
    def test_early_answer_to_spooled_upload_never_desyncs(self):
        """A 2 MiB POST answered 401 right after its head: the next requests on the proxy
        are answered by the backend, none swallowed as body bytes."""
        log = []
        factory = protocol.Factory()
        factory.protocol = lambda: EarlyAnswerBackend(log)
        backend = listen(factory)
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port], buffering={"request_memory": 65536})
        service, port = yield start_proxy(self, data)
        client = yield connect(port)
        self.addCleanup(client.transport.loseConnection)
        big = 2 * 1024 * 1024
        client.transport.write(b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % big)
        client.transport.write(b"x" * big)
        for i in range(3):
            client.transport.write(b"GET /after%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        responses = yield with_timeout(client.responses(4, [b"POST", b"GET", b"GET", b"GET"]))
        self.assertEqual(responses[0][0].status, 401)
        self.assertEqual([(h.status, b) for h, b in responses[1:]], [(200, b"got GET")] * 3)
        self.assertEqual([l for l in log if l.startswith(b"GET")],
                         [b"GET /after%d HTTP/1.1" % i for i in range(3)])
