"""Outbox: batched writes, the direct-send fast path only for plain TCP, flush and discard."""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from revproxy.netio import Outbox


def _received(sock):
    """Everything readable on ``sock`` right now (b"" if nothing)."""
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except BlockingIOError:
            return data
        if not piece:
            return data
        data += piece


class _TCPPair:
    """A real ``twisted.internet.tcp.Server`` on one end of a socketpair (no network, no
    running reactor: the fake reactor only records addWriter)."""

    def __init__(self, testcase):
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        testcase.addCleanup(ours.close)
        testcase.addCleanup(peer.close)
        self.reactor = MemoryReactorClock()
        self.transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 0, self.reactor)
        self.peer = peer


class _TLSLikeWrapper:
    """Shaped like Twisted's ``ProtocolWrapper`` under TLS: its own ``write``, every other
    attribute (``socket``, ``dataBuffer``...) forwarded to the TCP transport below."""

    def __init__(self, below):
        self._below = below
        self.writes = []

    def write(self, data):
        self.writes.append(data)

    def __getattr__(self, name):
        return getattr(self._below, name)


class OutboxTests(unittest.TestCase):
    def test_plain_tcp_gets_direct_send_at_end_of_turn(self):
        """Writes to a plain TCP transport are held, then leave in one send on the socket
        (nothing goes through transport.write, so no writer is registered)."""
        pair = _TCPPair(self)
        outbox = Outbox(pair.reactor)
        outbox.write(pair.transport, b"abc")
        outbox.write(pair.transport, b"def")
        self.assertEqual(_received(pair.peer), b"")
        pair.reactor.advance(0)
        self.assertEqual(_received(pair.peer), b"abcdef")
        self.assertEqual(pair.transport.dataBuffer, b"")
        self.assertEqual(pair.reactor.getWriters(), [])

    def test_plain_tcp_with_queued_data_goes_through_write(self):
        """When the TCP transport already has bytes queued, the outbox appends behind them
        through transport.write (order kept), never sending around them."""
        pair = _TCPPair(self)
        pair.transport.write(b"queued-")
        outbox = Outbox(pair.reactor)
        outbox.write(pair.transport, b"later")
        pair.reactor.advance(0)
        self.assertEqual(_received(pair.peer), b"")
        self.assertIn(pair.transport, pair.reactor.getWriters())
        pair.transport.doWrite()
        self.assertEqual(_received(pair.peer), b"queued-later")

    def test_tls_like_wrapper_only_gets_write(self):
        """A wrapper that forwards ``socket`` through __getattr__ (TLS) never has the socket
        below written to: every byte goes to its own write, in order."""
        pair = _TCPPair(self)
        wrapper = _TLSLikeWrapper(pair.transport)
        self.assertIs(wrapper.socket, pair.transport.socket)  # the trap being guarded against
        outbox = Outbox(pair.reactor)
        outbox.write(wrapper, b"one ")
        outbox.write(wrapper, b"two ")
        outbox.write(wrapper, b"three")
        pair.reactor.advance(0)
        self.assertEqual(b"".join(wrapper.writes), b"one two three")
        self.assertEqual(_received(pair.peer), b"")

    def test_tls_like_wrapper_flush_sends_pending_now_in_order(self):
        """flush() hands over what is pending at once; later writes follow in order and the
        end-of-turn flush does not repeat the flushed bytes."""
        pair = _TCPPair(self)
        wrapper = _TLSLikeWrapper(pair.transport)
        outbox = Outbox(pair.reactor)
        outbox.write(wrapper, b"a")
        outbox.write(wrapper, b"b")
        outbox.flush(wrapper)
        self.assertEqual(b"".join(wrapper.writes), b"ab")
        outbox.write(wrapper, b"c")
        pair.reactor.advance(0)
        self.assertEqual(b"".join(wrapper.writes), b"abc")
        self.assertEqual(_received(pair.peer), b"")

    def test_discard_forgets_pending_output(self):
        """discard() drops what was pending for that transport only."""
        pair = _TCPPair(self)
        dropped = _TLSLikeWrapper(pair.transport)
        kept = _TLSLikeWrapper(pair.transport)
        outbox = Outbox(pair.reactor)
        outbox.write(dropped, b"lost")
        outbox.write(kept, b"kept")
        outbox.discard(dropped)
        pair.reactor.advance(0)
        self.assertEqual(dropped.writes, [])
        self.assertEqual(kept.writes, [b"kept"])

    def test_flush_with_nothing_pending_writes_nothing(self):
        """flush() of a transport with nothing pending is a no-op."""
        wrapper = _TLSLikeWrapper(object())
        Outbox(MemoryReactorClock()).flush(wrapper)
        self.assertEqual(wrapper.writes, [])

    def test_unbatched_writes_through_at_once(self):
        """batch=False (fake-clock tests) writes through immediately."""
        wrapper = _TLSLikeWrapper(object())
        Outbox(MemoryReactorClock(), batch=False).write(wrapper, b"now")
        self.assertEqual(wrapper.writes, [b"now"])


class KernelQueueTests(unittest.TestCase):
    def test_bytes_the_peer_has_not_acknowledged_are_not_taken(self):
        """A peer that reads nothing: the kernel accepts megabytes, yet they all count as
        unsent (SIOCOUTQ), so a slow reader is measured by what it really took."""
        import socket
        import sys

        from revproxy import netio

        if not sys.platform.startswith("linux"):
            raise unittest.SkipTest("SIOCOUTQ is Linux's")
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        reader = socket.socket()
        self.addCleanup(reader.close)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(listener.getsockname())
        sender, _ = listener.accept()
        self.addCleanup(sender.close)
        sender.setblocking(False)
        sent = 0
        try:
            for _ in range(1000):
                sent += sender.send(b"x" * 65536)
        except BlockingIOError:
            pass

        class Stub:
            connected = True
            socket = sender

        unacked = netio._kernel_unacked(Stub())
        self.assertGreater(sent, 100000)
        self.assertGreater(unacked, sent - 20000)  # at most the reader's small buffer taken

    def test_kernel_queue_reading_does_not_grow_memory(self):
        """Asking the kernel's queue length once per request costs no memory: PyPy 3.9's
        ioctl leaked its copy of an immutable argument (~140 bytes a call), which made a
        loaded PyPy proxy grow by megabytes a second. 300,000 calls (about 40 MiB with the
        leak) must not move the resident size by more than a few MiB."""
        import sys

        from revproxy import netio

        if not sys.platform.startswith("linux"):
            raise unittest.SkipTest("SIOCOUTQ and /proc are Linux's")
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)

        class Stub:
            connected = True
            socket = a

        stub = Stub()
        for _ in range(20000):  # warm up (JIT, allocator) before the first reading
            netio._kernel_unacked(stub)
        before = _rss_kib()
        for _ in range(300000):
            netio._kernel_unacked(stub)
        self.assertLess(_rss_kib() - before, 8 * 1024)


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")
