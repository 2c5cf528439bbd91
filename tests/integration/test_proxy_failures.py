"""Backends that fail: unreachable, garbage, dying mid-response, closing pooled connections."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial import unittest

from revproxy.upstream.protocol import UpstreamConnection
from tests.integration.support import (
    backend_site, connect, listen, pattern, proxy_config, scripted_factory, start_proxy,
    with_timeout,
)


def free_port():
    """A loopback port with nothing listening on it (bound, then released)."""
    port = listen(backend_site())
    number = port.getHost().port
    port.stopListening()
    return number


class BackendFailureTests(unittest.TestCase):
    @defer.inlineCallbacks
    def proxy_to_script(self, script, **pool):
        self.log = []
        backend = listen(scripted_factory(script, self.log))
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["pools"]["main"].update(pool)
        _, port = yield start_proxy(self, data)
        return port

    @defer.inlineCallbacks
    def get(self, port, path=b"/", method=b"GET"):
        client = yield connect(port)
        client.transport.write(b"%s %s HTTP/1.1\r\nHost: a\r\n\r\n" % (method, path))
        return_value = yield with_timeout(client.responses(1, [method]))
        client.transport.loseConnection()
        return return_value[0]

    @defer.inlineCallbacks
    def test_unreachable_backend_is_502(self):
        """A member refusing connections gets the client a 502, not a hang."""
        _, port = yield start_proxy(self, proxy_config([free_port()]))
        head, _ = yield self.get(port)
        self.assertEqual(head.status, 502)

    @defer.inlineCallbacks
    def test_garbage_response_is_502(self):
        """A backend answering something that is not HTTP gets the client a 502."""
        port = yield self.proxy_to_script(lambda proto, head: proto.transport.write(b"SSH-2.0-x\r\n\r\n"))
        head, _ = yield self.get(port)
        self.assertEqual(head.status, 502)

    @defer.inlineCallbacks
    def test_no_response_head_in_time_is_504(self):
        """A backend that accepts but never answers trips first_byte_timeout: 504."""
        port = yield self.proxy_to_script(lambda proto, head: None, first_byte_timeout=0.2)
        head, _ = yield self.get(port)
        self.assertEqual(head.status, 504)

    @defer.inlineCallbacks
    def test_backend_dying_mid_response_aborts_client(self):
        """A truncated body never ends cleanly: the client connection is aborted."""
        def script(proto, head):
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            reactor.callLater(0, proto.transport.loseConnection)

        port = yield self.proxy_to_script(script)
        client = yield connect(port)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = yield with_timeout(client.closed)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"content-length: 1000", head.lower())
        self.assertLess(len(body), 1000)

    @defer.inlineCallbacks
    def test_chunked_truncation_never_sends_last_chunk(self):
        """A chunked response cut short never reaches the client with a terminating chunk."""
        def script(proto, head):
            proto.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            reactor.callLater(0, proto.transport.loseConnection)

        port = yield self.proxy_to_script(script)
        client = yield connect(port)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = yield with_timeout(client.closed)
        self.assertIn(b"hello", data)
        self.assertNotIn(b"0\r\n\r\n", data.split(b"\r\n\r\n", 1)[1])

    @defer.inlineCallbacks
    def test_pooled_connection_closed_by_backend_is_retried(self):
        """A reused connection the backend closed just as it was reused: the GET still succeeds."""
        state = {"n": 0}

        def script(proto, head):
            state["n"] += 1
            if state["n"] == 2:
                # Second request on the same connection: close without answering (the race).
                proto.transport.loseConnection()
                return
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        port = yield self.proxy_to_script(script)
        client = yield connect(port)
        client.transport.write(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        yield with_timeout(client.responses(1))
        client.transport.write(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        responses = yield with_timeout(client.responses(2))
        self.assertEqual([h.status for h, _ in responses], [200, 200])
        self.assertEqual(state["n"], 3)
        connects = [entry for entry in self.log if entry[0] == "connect"]
        self.assertEqual(len(connects), 2)
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_post_on_closed_pooled_connection_not_retried(self):
        """A non-idempotent request is never replayed: the client gets 502."""
        state = {"n": 0}

        def script(proto, head):
            state["n"] += 1
            if state["n"] == 2:
                proto.transport.loseConnection()
                return
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        port = yield self.proxy_to_script(script)
        client = yield connect(port)
        client.transport.write(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
        yield with_timeout(client.responses(1))
        client.transport.write(b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx")
        responses = yield with_timeout(client.responses(2))
        self.assertEqual(responses[1][0].status, 502)
        self.assertEqual(state["n"], 2)
        client.transport.loseConnection()

    @defer.inlineCallbacks
    def test_connection_reused_across_requests(self):
        """Sequential requests from different clients share one pooled backend connection."""
        port = yield self.proxy_to_script(
            lambda proto, head: proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"))
        for _ in range(3):
            head, body = yield self.get(port)
            self.assertEqual(body, b"x")
        connects = [entry for entry in self.log if entry[0] == "connect"]
        self.assertEqual(len(connects), 1)


class SpoonFeedingTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_slow_client_while_backend_connection_is_back_in_pool(self):
        """A client that doesn't read a 16 MB response: the backend exchange completes, the
        connection returns to the pool and serves another client, then the slow one drains."""
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["buffering"] = {"response_memory": 65536}
        service, port = yield start_proxy(self, data)
        member = service.runtime.backends["main"].members[0]
        released = defer.Deferred()
        original_release = member.release

        def release(conn):
            original_release(conn)
            if not released.called:
                budget = service.runtime.budget
                released.callback(budget.memory_used + budget.disk_used)

        member.release = release

        slow = yield connect(port)
        slow.transport.pauseProducing()  # stop reading: the kernel buffers fill up
        size = 16 * 1024 * 1024  # well past what the kernel's socket buffers absorb
        slow.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
        spooled = yield with_timeout(released, 30)
        self.assertGreater(spooled, 1024 * 1024, "the response was spooled, not streamed")
        self.assertEqual(member.idle, 1, "backend connection not back in the pool")
        self.assertEqual(member.open, 1)

        fast = yield connect(port)
        fast.transport.write(b"GET /size/10 HTTP/1.1\r\nHost: a\r\n\r\n")
        [(head, body)] = yield with_timeout(fast.responses(1))
        self.assertEqual(body, pattern(10))
        self.assertEqual(member.open, 1, "the second request reused the pooled connection")

        slow.transport.resumeProducing()
        [(head, body)] = yield with_timeout(slow.responses(1))
        self.assertEqual(len(body), size)
        self.assertEqual(body, pattern(size))
        slow.transport.loseConnection()
        fast.transport.loseConnection()



class SpoolCapTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_beyond_the_cap_the_backend_is_paused_and_nothing_is_lost(self):
        """With a 256 KiB spool cap, a 16 MB response to a stalled client pauses the backend
        (its connection stays busy, the spool stays at the cap) and still arrives whole."""
        backend = listen(backend_site())
        self.addCleanup(backend.stopListening)
        data = proxy_config([backend.getHost().port])
        data["buffering"] = {"response_memory": 65536, "response_file_max": 262144}
        service, port = yield start_proxy(self, data)
        member = service.runtime.backends["main"].members[0]
        budget = service.runtime.budget
        paused = defer.Deferred()
        original = UpstreamConnection.pauseProducing

        def pause(conn):
            original(conn)
            if not paused.called:
                paused.callback(budget.memory_used + budget.disk_used)

        self.patch(UpstreamConnection, "pauseProducing", pause)
        client = yield connect(port)
        client.transport.pauseProducing()
        size = 16 * 1024 * 1024
        client.transport.write(b"GET /size/%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
        spooled = yield with_timeout(paused, 30)  # the relay pauses the backend at the cap
        self.assertGreater(spooled, 65536, "paused only once the spool was full")
        self.assertLessEqual(budget.memory_used, 65536)
        self.assertLessEqual(budget.disk_used, 262144)
        self.assertEqual(member.idle, 0, "the backend connection is still streaming")
        client.transport.resumeProducing()
        [(head, body)] = yield with_timeout(client.responses(1), 60)
        self.assertEqual(len(body), size)
        self.assertEqual(body, pattern(size))
        client.transport.loseConnection()

