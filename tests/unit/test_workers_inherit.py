"""A worker adopting a socket bound by its supervisor: one shared port, one accept per
wake-up, adopted once; the proxy's ListenerSet uses the adopters instead of binding."""

from __future__ import annotations

import os
import socket

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from revproxy.server.listeners import ListenError, ListenerSet
from revproxy.workers.endpoints import BindSpec
from revproxy.workers.inherit import SharedPort, adopters
from revproxy.workers.sockets import SharedSockets, bind
from revproxy.workers.spec import InheritedSocket, WorkerSpec


class Greeter(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"hi")
        self.transport.loseConnection()


class Reader(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.done.callback(self.data)


class AdoptionTests(unittest.TestCase):
    def inherited(self):
        sock = bind(BindSpec(socket.AF_INET, ("127.0.0.1", 0), 16), "tcp:0")
        fd = os.dup(sock.fileno())  # what a worker finds as fd 3
        sock.close()
        spec = WorkerSpec(0, 1, "unix:/x", (InheritedSocket("proxy", "tcp:0", fd, socket.AF_INET),))
        return adopters(reactor, spec)

    @defer.inlineCallbacks
    def test_listener_set_adopts_instead_of_binding(self):
        """The inherited key is adopted as a SharedPort that serves; its fd is closed."""
        listeners = ListenerSet(reactor, self.inherited())
        factory = protocol.Factory.forProtocol(Greeter)
        opened = listeners.open({("proxy", "tcp:0"): ("tcp:0", "tcp:0:backlog=9", factory, "")})
        port = opened[("proxy", "tcp:0")]
        self.addCleanup(port.stopListening)
        self.assertIsInstance(port, SharedPort)
        reader = Reader()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                              reader)
        self.assertEqual((yield reader.done), b"hi")

    def test_one_accept_per_wake_up(self):
        """Three connections waiting: each doRead takes one (Twisted's port takes all)."""
        [adopt] = self.inherited().values()
        built = []

        class Counting(protocol.Factory):
            def buildProtocol(self, addr):
                built.append(addr)
                return protocol.Protocol()

        port = adopt(Counting())
        self.addCleanup(port.stopListening)
        port.stopReading()  # the test wakes it, not the reactor
        clients = [socket.create_connection(("127.0.0.1", port.getHost().port))
                   for _ in range(3)]
        for client in clients:
            self.addCleanup(client.close)
        port.doRead()
        self.assertEqual(len(built), 1)
        port.doRead()
        self.assertEqual(len(built), 2)
        for transport in list(reactor.getReaders()) + list(reactor.getWriters()):
            if getattr(transport, "server", None) is port:
                transport.abortConnection()

    def test_adopted_once(self):
        """A second adoption of the same inherited socket (its fd is closed): ListenError."""
        [adopt] = self.inherited().values()
        port = adopt(protocol.Factory.forProtocol(Greeter))
        self.addCleanup(port.stopListening)
        with self.assertRaises(ListenError):
            adopt(protocol.Factory())

    def test_bind_failure_names_the_endpoint_and_closes_the_others(self):
        """All or nothing: a port in use fails with the description; nothing stays bound."""
        busy = bind(BindSpec(socket.AF_INET, ("127.0.0.1", 0), 4), "x")
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        shared = SharedSockets()
        with self.assertRaises(ListenError) as caught:
            shared.bind_all({("proxy", "a"): BindSpec(socket.AF_INET, ("127.0.0.1", 0), 4),
                             ("proxy", "tcp:%d" % port): BindSpec(socket.AF_INET,
                                                                  ("127.0.0.1", port), 4)})
        self.assertIn("tcp:%d" % port, str(caught.exception))
        self.assertEqual(shared.sockets, {})
