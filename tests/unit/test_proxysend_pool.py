"""``send_proxy_protocol`` on a fake reactor: every member connection opens with its
client's PROXY header; connections are private to their client connection (never handed
to another client, reused by the same one); pools without the option share as before;
the idle bound; TLS and probes get the header in clear; the config key."""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from revproxy.balancing.probe import ActiveChecker, http_probe
from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.config.model import HealthCheck, Pool
from revproxy.http1.parser import Limits
from revproxy.netio import Outbox
from revproxy.pipeline.context import PeerFacts
from revproxy.server.proxyproto import HeaderParser, LOCAL
from revproxy.timers import Deadlines
from revproxy.upstream.pool import MemberPool
from revproxy.upstream.proxysend import PrivateMemberPool, member_pool_class
from revproxy.upstream.tls import client_policy
from tests.unit.world import World, config_dict

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
A, B = ("203.0.113.7", 40000), ("203.0.113.8", 40001)


def world_with(testcase, version="v1", **pool):
    if version:
        pool["send_proxy_protocol"] = version
    return World(testcase, config_dict(pool=pool))


class PrivateConnectionTests(unittest.TestCase):
    def test_connection_opens_with_the_clients_v1_header(self):
        """The header names the client (its PeerFacts address) and the address it
        connected to (its transport's host), then the request follows."""
        world = world_with(self, "v1")
        proto, client = world.client(A)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        sent = upstream.value()
        self.assertTrue(sent.startswith(
            b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 12345\r\nGET /x HTTP/1.1\r\n"), sent)
        backend.dataReceived(OK)
        self.assertIn(b"200 OK", client.take())

    def test_v2_header(self):
        world = world_with(self, "v2")
        proto, client = world.client(A)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        header, rest = HeaderParser().feed(upstream.value())
        self.assertEqual((header.version, header.source, header.destination),
                         (2, A, ("10.0.0.1", 12345)))
        self.assertTrue(rest.startswith(b"GET /x HTTP/1.1\r\n"))

    def test_two_clients_never_share_and_one_client_reuses_its_own(self):
        """Client B gets a new connection although A's is idle; A's next request goes on
        A's connection, with no second header."""
        world = world_with(self, "v1")
        proto_a, client_a = world.client(A)
        proto_a.dataReceived(GET)
        backend_a, upstream_a = world.accept_backend()
        backend_a.dataReceived(OK)
        self.assertIn(b"200 OK", client_a.take())
        upstream_a.clear()

        proto_b, client_b = world.client(B)
        proto_b.dataReceived(GET)
        self.assertEqual(world.pending_connects, 1)  # not A's idle connection
        self.assertEqual(upstream_a.value(), b"")
        backend_b, upstream_b = world.accept_backend()
        self.assertTrue(upstream_b.value().startswith(b"PROXY TCP4 203.0.113.8 "))
        backend_b.dataReceived(OK)
        self.assertIn(b"200 OK", client_b.take())

        proto_a.dataReceived(GET)
        self.assertEqual(world.pending_connects, 0)
        self.assertTrue(upstream_a.value().startswith(b"GET /x HTTP/1.1\r\n"))
        backend_a.dataReceived(OK)
        self.assertIn(b"200 OK", client_a.take())
        member = world.runtime.backends["main"].members[0]
        self.assertIsInstance(member, PrivateMemberPool)
        self.assertEqual((member.open, member.idle), (2, 2))

    def test_pools_without_the_option_share_connections_as_before(self):
        """The common path: B's request reuses A's idle connection, no header anywhere."""
        world = world_with(self, "")
        proto_a, client_a = world.client(A)
        proto_a.dataReceived(GET)
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().startswith(b"GET "))
        backend.dataReceived(OK)
        upstream.clear()
        proto_b, client_b = world.client(B)
        proto_b.dataReceived(GET)
        self.assertEqual(world.pending_connects, 0)
        self.assertTrue(upstream.value().startswith(b"GET "))
        self.assertIs(type(world.runtime.backends["main"].members[0]), MemberPool)

    def test_idle_bound_closes_the_least_recently_released(self):
        """max_idle_per_member = 1: when B's connection goes idle, A's is closed."""
        world = world_with(self, "v1", max_idle_per_member=1)
        proto_a, client_a = world.client(A)
        proto_a.dataReceived(GET)
        proto_b, client_b = world.client(B)
        proto_b.dataReceived(GET)
        backend_a, upstream_a = world.accept_backend()
        backend_b, upstream_b = world.accept_backend()
        backend_a.dataReceived(OK)
        self.assertFalse(upstream_a.disconnecting)
        backend_b.dataReceived(OK)
        self.assertTrue(upstream_a.disconnecting)
        self.assertFalse(upstream_b.disconnecting)
        backend_a.connectionLost(Failure(ConnectionDone()))
        member = world.runtime.backends["main"].members[0]
        self.assertEqual((member.open, member.idle), (1, 1))
        # B reuses its own; A (its connection gone) gets a new one
        upstream_b.clear()
        proto_b.dataReceived(GET)
        self.assertEqual(world.pending_connects, 0)
        self.assertTrue(upstream_b.value().startswith(b"GET "))
        proto_a.dataReceived(GET)
        self.assertEqual(world.pending_connects, 1)

    def test_idle_private_connections_time_out(self):
        world = world_with(self, "v2", idle_timeout=20)
        proto, client = world.client(A)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        world.reactor.advance(19)
        self.assertFalse(upstream.disconnecting)
        world.reactor.advance(1.5)
        self.assertTrue(upstream.disconnecting)

    def test_fresh_retry_carries_the_header(self):
        """A reused private connection closed before answering: the request is retried on
        a fresh connection for the same client, which opens with the header again."""
        world = world_with(self, "v1")
        proto, client = world.client(A)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        backend.dataReceived(OK)
        client.clear()
        proto.dataReceived(GET)
        backend.connectionLost(Failure(ConnectionDone()))
        backend2, upstream2 = world.accept_backend()
        self.assertTrue(upstream2.value().startswith(b"PROXY TCP4 203.0.113.7 "))
        backend2.dataReceived(OK)
        self.assertIn(b"200 OK", client.take())

    def test_reload_switching_the_option_rebuilds_the_pool(self):
        world = world_with(self, "")
        world.start()
        self.assertTrue(world.reload(config_dict(pool={"send_proxy_protocol": "v2"})))
        backend = world.service._holder.current.backends["main"]
        backend.set_addresses([("10.0.0.1", 8000, 1)])
        self.assertIsInstance(backend.members[0], PrivateMemberPool)
        self.assertEqual(backend.members[0].version, "v2")


# -- TLS and probes --------------------------------------------------------------------------
def _tls_private_member(reactor, version="v1"):
    config = Pool(name="p", members=("https://10.0.0.1:443",), send_proxy_protocol=version)
    return PrivateMemberPool(reactor, "10.0.0.1", 443, config, Limits(), Deadlines(reactor),
                             Outbox(reactor, False), client_policy(config).creator_for("10.0.0.1"),
                             "10.0.0.1")


def _accept(reactor, index=-1):
    host, port, factory, _, _ = reactor.tcpClients[index]
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_tls_member_gets_the_header_in_clear_before_the_handshake():
    reactor = MemoryReactorClock()
    member = _tls_private_member(reactor)
    member.connect(PeerFacts("198.51.100.20", 5000, local=("192.0.2.1", 443)))
    _, transport = _accept(reactor)
    header = b"PROXY TCP4 198.51.100.20 192.0.2.1 5000 443\r\n"
    sent = transport.value()
    assert sent.startswith(header)
    assert sent[len(header):len(header) + 1] == b"\x16"  # then the ClientHello


def test_probe_of_a_plain_member_opens_with_the_preface():
    reactor = MemoryReactorClock()
    http_probe(reactor, "10.0.0.1", 8080, HealthCheck(), reactor, preface=b"PROXY UNKNOWN\r\n")
    _, transport = _accept(reactor)
    assert transport.value().startswith(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n")


def test_probe_of_a_tls_member_sends_the_preface_before_the_handshake():
    reactor = MemoryReactorClock()
    member = _tls_private_member(reactor, "v2")
    http_probe(reactor, "10.0.0.1", 443, HealthCheck(), reactor, tls=member.tls,
               preface=member.probe_preface)
    _, transport = _accept(reactor)
    header, rest = HeaderParser().feed(transport.value())
    assert header.command == LOCAL
    assert rest[:1] == b"\x16"


def test_active_checker_passes_the_members_probe_preface():
    """Members of a send_proxy_protocol pool are probed with UNKNOWN / LOCAL; others
    with nothing."""
    reactor = MemoryReactorClock()
    calls = []

    def fake_probe(reactor_, host, port, check, clock, **extra):
        calls.append((host, extra))
        from twisted.internet.defer import Deferred

        return Deferred()

    plain = MemberPool(reactor, "10.0.0.2", 80, Pool(name="p", members=()), Limits(),
                       Deadlines(reactor), Outbox(reactor, False))
    private = PrivateMemberPool(reactor, "10.0.0.3", 80,
                                Pool(name="p", members=(), send_proxy_protocol="v1"), Limits(),
                                Deadlines(reactor), Outbox(reactor, False))
    checker = ActiveChecker(reactor, reactor, lambda: [plain, private], HealthCheck(),
                            lambda *a: None, probe=fake_probe)
    checker.start()
    assert calls == [("10.0.0.2", {}), ("10.0.0.3", {"preface": b"PROXY UNKNOWN\r\n"})]
    checker.stop()


def test_private_pool_never_hands_out_a_connection_blind():
    reactor = MemoryReactorClock()
    member = PrivateMemberPool(reactor, "10.0.0.3", 80,
                               Pool(name="p", members=(), send_proxy_protocol="v1"), Limits(),
                               Deadlines(reactor), Outbox(reactor, False))
    assert member.take_idle() is None
    assert member_pool_class(Pool(name="p", members=())) is MemberPool


# -- config ----------------------------------------------------------------------------------
def test_config_key():
    config = parse_config({"pools": {"p": {"members": ["http://10.0.0.1:80"],
                                           "send_proxy_protocol": "v2"}}}, "<t>")
    assert config.pools[0].send_proxy_protocol == "v2"
    assert parse_config({"pools": {"p": {"members": ["http://10.0.0.1:80"]}}},
                        "<t>").pools[0].send_proxy_protocol == ""


@pytest.mark.parametrize("value", ["v3", "V1", True, 1])
def test_bad_config_value_names_file_and_key(value):
    with pytest.raises(ConfigError) as info:
        parse_config({"pools": {"p": {"members": ["http://10.0.0.1:80"],
                                      "send_proxy_protocol": value}}}, "f.toml")
    text = str(info.value)
    assert "f.toml" in text and "send_proxy_protocol" in text and '"v1"' in text


class BehindBalancerTests(unittest.TestCase):
    def test_client_of_a_trusted_proxy_header_is_forwarded_with_its_destination(self):
        """A connection whose PROXY header (read by a haproxy: listener) named a client:
        the member's header names that client and the header's destination, not the
        balancer's TCP address nor the listener's."""
        from revproxy.server.protocol import ProxyFactory
        from revproxy.server.proxylisten import client_address
        from revproxy.server.proxyproto import v2_header
        from tests.unit.world import Transport

        world = world_with(self, "v1")
        incoming, _ = HeaderParser().feed(v2_header(("198.51.100.20", 5000),
                                                    ("192.0.2.1", 443)))
        balancer = Transport(("10.9.9.9", 1234))
        address = client_address(incoming, balancer.getPeer())
        proto = ProxyFactory(world.service._holder).buildProtocol(address)
        proto.makeConnection(balancer)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().startswith(
            b"PROXY TCP4 198.51.100.20 192.0.2.1 5000 443\r\nGET "), upstream.value())


class MirrorToPrivatePoolTests(unittest.TestCase):
    def test_a_mirrored_copy_carries_the_same_clients_header(self):
        data = config_dict()
        data["pools"]["shadow"] = {"members": ["http://10.0.0.2:8000"],
                                   "send_proxy_protocol": "v1"}
        data["routes"] = [{"name": "app", "pool": "main", "mirror": "shadow"}]
        world = World(self, data)
        proto, client = world.client(A)
        proto.dataReceived(GET)
        backend, upstream = world.accept_backend()
        self.assertTrue(upstream.value().startswith(b"GET "))  # main: no option
        mirror, copy = world.accept_backend()
        self.assertTrue(copy.value().startswith(
            b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 12345\r\nGET /x HTTP/1.1\r\n"))
