"""Slow clients and connection limits on real loopback sockets, with short configured times:
a slow reader and a slowloris client are cut off on time while a normal client is served at
once; a slow body never reaches a backend; per-address limit; the oldest idle connection
gives way when the proxy is full."""

from __future__ import annotations

import socket
import time

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from tests.integration.support import (
    LOOPBACK, RawClient, backend_site, connect, listen, proxy_config, scripted_factory,
    start_proxy, with_timeout,
)

GET = b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n"


@defer.inlineCallbacks
def wait_until(predicate, seconds):
    """Poll ``predicate`` every 50 ms for at most ``seconds``; True when it held."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        yield task.deferLater(reactor, 0.05, lambda: None)
    return predicate()


def raw_socket(port, rcvbuf=None, source=LOOPBACK):
    """A blocking-connected plain socket (the listener's backlog completes the connect),
    then non-blocking; ``rcvbuf`` small makes a client that can hold little unread."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((source, 0))
    s.connect((LOOPBACK, port))
    s.setblocking(False)
    return s


def closed_by_peer(s, received):
    """True once the peer closed ``s`` (EOF or reset); appends what arrived to ``received``."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
            received.append(data)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


class SlowClientTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self, limits, backend=None):
        if backend is None:
            backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.access = []
        data = proxy_config([backend.getHost().port], limits=limits)
        data["logging"]["access_log"] = self.mktemp()
        self.service, self.port = yield start_proxy(self, data)
        self.service.runtime.access_log.log = self.access.append
        self.lines = []
        observer = lambda event: self.lines.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    @defer.inlineCallbacks
    def normal_request_time(self):
        """A new connection, one small request; its latency in seconds (asserted 200)."""
        began = time.monotonic()
        client = yield connect(self.port)
        client.transport.write(GET % 100)
        [(head, body)] = yield with_timeout(client.responses(1), 5)
        self.assertEqual((head.status, len(body)), (200, 100))
        client.transport.loseConnection()
        return time.monotonic() - began

    @defer.inlineCallbacks
    def test_slow_reader_is_cut_off_while_a_normal_client_is_served(self):
        """A client that stops reading a 4 MB response is aborted after the first or second
        1 s window (the kernel buffers filled in the first count as taken), with its measured
        rate in the error log and its request in the access log; a normal client meanwhile
        gets its answer at once."""
        yield self.start({"min_response_rate": "1k", "min_rate_grace": "1s",
                          "send_timeout": "60s"})
        slow = raw_socket(self.port, rcvbuf=4096)
        self.addCleanup(slow.close)
        began = time.monotonic()
        slow.sendall(GET % (4 * 1024 * 1024))
        yield task.deferLater(reactor, 0.3, lambda: None)
        latency = yield self.normal_request_time()
        self.assertLess(latency, 1.0)
        cut = yield wait_until(lambda: any("client too slow" in line for line in self.lines), 6)
        elapsed = time.monotonic() - began
        self.assertTrue(cut, "the slow reader was never cut off")
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 4.0)
        [line] = [line for line in self.lines if "client too slow" in line]
        self.assertIn("127.0.0.1", line)
        self.assertIn("B/s over", line)
        gone = yield wait_until(lambda: closed_by_peer(slow, []), 2)
        self.assertTrue(gone, "the slow reader's connection is closed")
        self.assertIn(b"/size/4194304", [record.target for record in self.access])

    @defer.inlineCallbacks
    def test_reader_at_a_good_rate_is_never_cut(self):
        """A client reading 64 KiB every 0.1 s (640 KiB/s, min 1k) gets its 1 MiB whole."""
        yield self.start({"min_response_rate": "1k", "min_rate_grace": "0.5s"})
        client = raw_socket(self.port, rcvbuf=65536)
        self.addCleanup(client.close)
        client.sendall(GET % (1024 * 1024))
        received = []
        for _ in range(200):
            yield task.deferLater(reactor, 0.1, lambda: None)
            try:
                received.append(client.recv(65536))
            except BlockingIOError:
                pass
            if sum(map(len, received)) >= 1024 * 1024:
                break
        self.assertGreater(sum(map(len, received)), 1024 * 1024)
        self.assertFalse(any("client too slow" in line for line in self.lines))

    @defer.inlineCallbacks
    def test_slowloris_is_cut_at_header_timeout_while_a_normal_client_is_served(self):
        """A head trickling one field every 0.2 s is answered 408 and closed at header_timeout
        (1 s), not before; a normal client is served meanwhile."""
        yield self.start({"header_timeout": "1s"})
        slow = raw_socket(self.port)
        self.addCleanup(slow.close)
        began = time.monotonic()
        slow.sendall(b"GET /size/10 HTTP/1.1\r\nHost: a\r\n")
        received = []
        for n in range(4):
            yield task.deferLater(reactor, 0.2, lambda: None)
            slow.sendall(b"x-%d: y\r\n" % n)
        latency = yield self.normal_request_time()
        self.assertLess(latency, 1.0)
        closed = yield wait_until(lambda: closed_by_peer(slow, received), 3)
        self.assertTrue(closed)
        self.assertGreaterEqual(time.monotonic() - began, 1.0)
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 408 "))

    @defer.inlineCallbacks
    def test_slow_body_is_408_and_never_reaches_a_backend(self):
        """A body arriving at 10 B/s (min 1k) gets 408 after its 1 s window; the backend
        saw no connection at all."""
        seen = []
        backend = listen(scripted_factory(lambda proto, head: None, seen))
        yield self.start({"min_request_rate": "1k", "min_rate_grace": "1s"}, backend)
        client = raw_socket(self.port)
        self.addCleanup(client.close)
        began = time.monotonic()
        client.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        received = []
        for _ in range(30):
            client.sendall(b"x")
            yield task.deferLater(reactor, 0.1, lambda: None)
            if closed_by_peer(client, received):
                break
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 408 "))
        self.assertLess(time.monotonic() - began, 2.5)
        self.assertEqual(seen, [], "a slow body never holds a backend connection")


class PipelineHoldTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_pipelined_request_waits_until_the_client_took_the_previous_response(self):
        """A client pipelining five 1 MiB requests and reading nothing gets one backend
        exchange, not five (the kernel would swallow megabytes for it); once it reads, every
        response arrives whole and in order."""
        seen = []
        body = b"y" * (1024 * 1024)

        def answer(proto, head):
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                                  + body)

        backend = listen(scripted_factory(answer, seen))
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port], limits={"min_response_rate": 0})
        self.service, port = yield start_proxy(self, data)
        client = raw_socket(port, rcvbuf=4096)
        self.addCleanup(client.close)
        client.sendall(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n" * 5)
        yield task.deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(len([e for e in seen if e[0] == "request"]), 1)
        received = []
        end = time.monotonic() + 20
        while sum(map(len, received)) < 5 * len(body) and time.monotonic() < end:
            try:
                received.append(client.recv(1 << 20))
            except BlockingIOError:
                yield task.deferLater(reactor, 0.01, lambda: None)
        data = b"".join(received)
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 5)
        self.assertEqual(len([e for e in seen if e[0] == "request"]), 5)


class ConnectionLimitTests(unittest.TestCase):
    @defer.inlineCallbacks
    def start(self, limits):
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        self.service, self.port = yield start_proxy(self, proxy_config([backend.getHost().port],
                                                                       limits=limits))

    @defer.inlineCallbacks
    def client_from(self, source):
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, self.port, bindAddress=(source, 0))
        yield connectProtocol(endpoint, client)
        self.addCleanup(client.transport.abortConnection)
        return client

    @defer.inlineCallbacks
    def served(self, client):
        client.transport.write(GET % 10)
        [(head, _)] = yield with_timeout(client.responses(1), 5)
        return head.status

    @defer.inlineCallbacks
    def test_per_ip_limit_refuses_one_address_not_others(self):
        """With max_connections_per_ip 3, a fourth connection from 127.0.0.1 is closed at
        once; 127.0.0.2 is still served."""
        yield self.start({"max_connections_per_ip": 3})
        held = []
        for _ in range(3):
            held.append((yield self.client_from("127.0.0.1")))
        fourth = yield self.client_from("127.0.0.1")
        yield with_timeout(fourth.closed, 5)
        self.assertEqual(fourth.received, b"")
        other = yield self.client_from("127.0.0.2")
        self.assertEqual((yield self.served(other)), 200)
        self.assertEqual((yield self.served(held[0])), 200)

    @defer.inlineCallbacks
    def test_full_proxy_sheds_the_oldest_idle_keep_alive_connection(self):
        """max_connections 2, both idle on keep-alive: a third client is served and the
        connection idle the longest is closed; the younger one still works."""
        yield self.start({"max_connections": 2})
        oldest = yield self.client_from("127.0.0.1")
        self.assertEqual((yield self.served(oldest)), 200)
        younger = yield self.client_from("127.0.0.2")
        self.assertEqual((yield self.served(younger)), 200)
        third = yield self.client_from("127.0.0.3")
        self.assertEqual((yield self.served(third)), 200)
        yield with_timeout(oldest.closed, 5)
        younger.received = b""
        self.assertEqual((yield self.served(younger)), 200)


class StartupLimitsTests(unittest.TestCase):
    def setUp(self):
        import os

        self.mktemp_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.mktemp_dir)

    @defer.inlineCallbacks
    def test_twistd_logs_the_effective_limits_at_start(self):
        """`twistd revproxy` logs the open-files limit (raised to the hard limit where
        allowed) with max_connections and the per-address limit, before listening."""
        import resource

        from tests.integration.test_twistd import spawn

        proc, transport = spawn(self, "-n", "--pidfile=", "revproxy", "--listen",
                                "tcp:0:interface=127.0.0.1", "--upstream", "http://127.0.0.1:1")
        match = yield with_timeout(proc.wait_for(
            rb"limits: open files (\d+)[^,]*, max_connections 10000, max_connections_per_ip 512"), 20)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY:
            self.assertEqual(int(match.group(1)), hard)
        yield with_timeout(proc.wait_for(rb"listening on"), 20)
        transport.signalProcess("TERM")
        yield proc.ended
