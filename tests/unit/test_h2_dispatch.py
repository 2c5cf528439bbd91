"""Protocol choice per connection (ALPN, cleartext prior knowledge) and h2 conversations
cut at random points."""

from __future__ import annotations

import h2.config
import h2.connection
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.http2.connection import H2ServerConnection
from revproxy.http2.dispatch import NegotiatingFactory
from revproxy.server.protocol import ClientConnection
from tests.unit.h2world import H2Client
from tests.unit.world import Transport, World, config_dict

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class TLSTransport(Transport):
    negotiatedProtocol = None


def _client_bytes():
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"),
                          (b":authority", b"a.test"), (b":path", b"/x")], end_stream=True)
    return conn.data_to_send()


class ChoiceTests(unittest.TestCase):
    def _connect(self, world, negotiated, tls=True):
        proto = NegotiatingFactory(world.service._holder, "https", "l", tls).buildProtocol(None)
        transport = TLSTransport()
        proto.makeConnection(transport)
        transport.negotiatedProtocol = negotiated
        if tls:
            proto.handshakeCompleted()
        return proto, transport

    def test_alpn_h2_gets_http2(self):
        world = World(self)
        proto, transport = self._connect(world, b"h2")
        self.assertIsInstance(proto.chosen, H2ServerConnection)
        proto.dataReceived(_client_bytes())
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().startswith(b"GET /x HTTP/1.1"))
        self.assertIn(b"x-forwarded-proto: https", upstream.value())

    def test_alpn_http1_or_none_gets_http1(self):
        world = World(self)
        for negotiated in (b"http/1.1", None):
            proto, transport = self._connect(world, negotiated)
            self.assertIsInstance(proto.chosen, ClientConnection)
            proto.dataReceived(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
            backend, upstream = world.accept_backend()
            self.assertTrue(upstream.value().startswith(b"GET /y HTTP/1.1"))

    def test_http2_disabled_means_http1_even_with_alpn(self):
        world = World(self, config_dict(http2={"enabled": False}))
        proto = NegotiatingFactory(world.service._holder).buildProtocol(None)
        self.assertIsInstance(proto, ClientConnection)

    def test_handshake_must_complete_within_header_timeout(self):
        """A TLS client that never finishes its handshake is aborted (it is not yet a
        counted connection, so this is the only thing watching it)."""
        world = World(self, config_dict(limits={"header_timeout": 5}))
        proto = NegotiatingFactory(world.service._holder).buildProtocol(None)
        transport = TLSTransport()
        proto.makeConnection(transport)
        world.reactor.advance(4)
        self.assertFalse(transport.aborted)
        world.reactor.advance(1.5)
        self.assertTrue(transport.aborted)

    def test_cleartext_prior_knowledge(self):
        """With prior_knowledge on, the preface (even split) selects HTTP/2; other bytes
        HTTP/1.1; with it off, the preface gets HTTP/1.1 505."""
        world = World(self, config_dict(http2={"prior_knowledge": True}))
        proto, transport = self._connect(world, None, tls=False)
        data = _client_bytes()
        proto.dataReceived(data[:7])
        self.assertIsNone(proto.chosen)
        proto.dataReceived(data[7:])
        self.assertIsInstance(proto.chosen, H2ServerConnection)
        self.assertEqual(world.pending_connects, 1)
        proto, transport = self._connect(world, None, tls=False)
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIsInstance(proto.chosen, ClientConnection)

        world = World(self)
        proto, transport = self._connect(world, None, tls=False)
        self.assertIsInstance(proto, ClientConnection, "no choice to make: HTTP/1.1 at once")
        proto.dataReceived(_client_bytes())
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 505 "))


class SplitTests(unittest.TestCase):
    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=80), max_size=30))
    def test_any_split_of_a_conversation_gives_the_same_result(self, cuts):
        """The client's bytes cut anywhere: the backend sees the same requests and the
        client the same answers."""
        results = []
        for split in (False, True):
            world = World(self)
            client = H2Client(world, pump=False)
            client.request(headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
            client.request(b"POST", path=b"/p", body=b"body bytes")
            data = client.h2.data_to_send()
            pieces = [data]
            if split:
                pieces, pos = [], 0
                for cut in cuts:
                    pieces.append(data[pos:pos + cut])
                    pos += cut
                pieces.append(data[pos:])
            for piece in pieces:
                if piece:
                    client.proto.dataReceived(piece)
            client.exchange()
            sent = []
            for _ in range(2):
                backend, upstream = world.accept_backend()
                sent.append(upstream.value())
                backend.dataReceived(OK)
            client.exchange()
            results.append((sent, client.response(1), client.response(3)))
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0][1][0], 200)
