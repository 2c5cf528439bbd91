"""Every accepted client connection, every request and every TLS connection made, client-facing or to a
backend, tells PyPy's collector about the memory behind it (revproxy.gcpressure); on CPython
nothing is called."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy import gcpressure
from revproxy.tls.listener import CurrentContexts
from revproxy.upstream.tls import _MemberCreator


class _Listener:
    def dispatch_context(self, now):
        return SSL.Context(SSL.TLS_METHOD)


class _Runtime:
    clock = Clock()

    class tls:  # noqa: N801 (stands for the runtime's TLS state)
        @staticmethod
        def listener(description):
            return _Listener()


class _Holder:
    current = _Runtime()


class GCPressureTests(unittest.TestCase):
    def setUp(self):
        self.pressure = []
        self.patch(gcpressure, "add_memory_pressure", self.pressure.append)

    def test_each_connection_adds_its_estimate(self):
        """tls_connection_created() adds SSL_CONNECTION_BYTES and connection_accepted()
        CONNECTION_BYTES, once per call."""
        gcpressure.tls_connection_created()
        gcpressure.connection_accepted()
        gcpressure.tls_connection_created()
        self.assertEqual(self.pressure, [gcpressure.SSL_CONNECTION_BYTES,
                                         gcpressure.CONNECTION_BYTES,
                                         gcpressure.SSL_CONNECTION_BYTES])

    def test_nothing_called_without_the_hook(self):
        """Where there is no add_memory_pressure (CPython) it does nothing."""
        self.patch(gcpressure, "add_memory_pressure", None)
        gcpressure.tls_connection_created()
        gcpressure.connection_accepted()
        self.assertEqual(self.pressure, [])

    def test_listener_and_backend_connections_both_count(self):
        """The listener's server connections and the pools' client connections report."""
        CurrentContexts(_Holder(), "ssl:0").serverConnectionForTLS(object())
        self.assertEqual(len(self.pressure), 1)
        creator = _MemberCreator(SSL.Context(SSL.TLS_METHOD), "backend.example", False)
        creator.clientConnectionForTLS(object())
        self.assertEqual(len(self.pressure), 2)

    def test_admitted_client_connections_count(self):
        """Each client connection admitted (HTTP/1.1 and HTTP/2 both go through admit)
        reports once."""
        from revproxy.server.protocol import ProxyFactory
        from tests.unit.world import Transport, World

        world = World(self)
        for port in (4000, 4001):
            proto = ProxyFactory(world.service._holder, "http", "").buildProtocol(None)
            proto.makeConnection(Transport(("192.0.2.1", port)))
        self.assertEqual(self.pressure, [gcpressure.CONNECTION_BYTES] * 2)

    def test_each_request_counts(self):
        """Every ProxyRequest made reports once (a request that waits behind another on its
        connection is not made yet)."""
        from revproxy.server.protocol import ProxyFactory
        from tests.unit.world import Transport, World

        self.patch(gcpressure, "REQUEST_BYTES", 7)  # told apart from the connections'
        world = World(self)
        for port in (4000, 4001):
            proto = ProxyFactory(world.service._holder, "http", "").buildProtocol(None)
            proto.makeConnection(Transport(("192.0.2.1", port)))
            proto.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.pressure.count(7), 2)

    def test_firewall_transactions_count(self):
        """firewall_transaction() adds FIREWALL_BYTES (the firewall hook calls it for each
        request it inspects)."""
        gcpressure.firewall_transaction()
        self.assertEqual(self.pressure, [gcpressure.FIREWALL_BYTES])
