"""The epoll loop without a log context per event (revproxy.fastpoll), on a real
EPollReactor of its own (not the test reactor)."""

from __future__ import annotations

import socket

from twisted.internet import abstract
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.pollreactor import PollReactor
from twisted.python import log
from twisted.trial import unittest

from revproxy import fastpoll


class Reader(abstract.FileDescriptor):
    """Reads its end of a socket pair; ``fail`` makes ``doRead`` raise."""

    def __init__(self, reactor, sock, fail=False):
        abstract.FileDescriptor.__init__(self, reactor)
        self.sock = sock
        self.fail = fail
        self.data = []
        self.lost = []
        self.connected = 1

    def fileno(self):
        return self.sock.fileno()

    def logPrefix(self):
        return "ReaderPrefix"

    def doRead(self):
        if self.fail:
            raise ValueError("handler failed")
        self.data.append(self.sock.recv(100))

    def connectionLost(self, reason):
        abstract.FileDescriptor.connectionLost(self, reason)
        self.lost.append(reason)


class FastPollTests(unittest.TestCase):
    def setUp(self):
        self.reactor = EPollReactor()
        self.addCleanup(self._close_reactor)
        self.pairs = []

    def _close_reactor(self):
        for reader in self.reactor.getReaders():
            self.reactor.removeReader(reader)
        self.reactor._poller.close()
        for a, b in self.pairs:
            a.close()
            b.close()
        waker = getattr(self.reactor, "waker", None)
        if waker is not None:
            waker.connectionLost(None)

    def reader(self, fail=False):
        a, b = socket.socketpair()
        a.setblocking(False)
        self.pairs.append((a, b))
        reader = Reader(self.reactor, a, fail)
        self.reactor.addReader(reader)
        return reader, b

    def test_installed_on_epoll_and_dispatches_reads(self):
        self.assertTrue(fastpoll.install(self.reactor, environ={}))
        self.assertIs(self.reactor.doIteration.__func__, fastpoll.do_poll)
        self.assertTrue(fastpoll.install(self.reactor, environ={}))  # idempotent
        reader, peer = self.reader()
        peer.sendall(b"hello")
        self.reactor.doIteration(1.0)
        self.assertEqual(reader.data, [b"hello"])

    def test_a_failing_handler_is_logged_and_dropped_the_loop_goes_on(self):
        """As with Twisted's loop: the exception is logged, that selectable is
        disconnected, the other one in the same wake-up is still served."""
        fastpoll.install(self.reactor, environ={})
        bad, bad_peer = self.reader(fail=True)
        good, good_peer = self.reader()
        bad_peer.sendall(b"x")
        good_peer.sendall(b"y")
        self.reactor.doIteration(1.0)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(bad.lost), 1)
        self.assertEqual(good.data, [b"y"])

    def test_an_exception_escaping_dispatch_is_logged_with_the_prefix(self):
        fastpoll.install(self.reactor, environ={})
        reader, peer = self.reader()
        seen = []
        log.addObserver(seen.append)
        self.addCleanup(log.removeObserver, seen.append)

        def broken(selectable, fd, event):
            raise RuntimeError("dispatch broke")

        self.reactor._doReadOrWrite = broken
        peer.sendall(b"z")
        self.reactor.doIteration(1.0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("ReaderPrefix", [e.get("system") for e in seen if e.get("isError")])

    def test_other_reactors_and_the_switch_keep_twisted_s_loop(self):
        self.assertFalse(fastpoll.install(self.reactor, environ={fastpoll.ENV_KEEP: "1"}))
        self.assertNotIn("doIteration", vars(self.reactor))
        poll = PollReactor()
        self.addCleanup(lambda: poll.waker.connectionLost(None)
                        if getattr(poll, "waker", None) else None)
        self.assertFalse(fastpoll.install(poll, environ={}))
        self.assertNotIn("doIteration", vars(poll))

        class Custom(EPollReactor):
            pass

        custom = Custom()
        self.addCleanup(custom._poller.close)
        self.assertFalse(fastpoll.install(custom, environ={}))

    def test_timeout_none_and_eintr(self):
        """No event within the timeout returns; EINTR from the poller returns quietly."""
        fastpoll.install(self.reactor, environ={})
        self.reactor.doIteration(0.0)

        class Interrupted:
            def poll(self, timeout, count):
                raise InterruptedError(4, "interrupted")  # OSError with errno EINTR

            def close(self):
                pass

        real = self.reactor._poller
        self.reactor._poller = Interrupted()
        try:
            self.reactor.doIteration(None)
        finally:
            self.reactor._poller = real


