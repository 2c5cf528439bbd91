"""Member host names: resolved at start, re-resolved on the clock, last answer kept on failure."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.trial import unittest

from revproxy.config.model import Pool
from revproxy.upstream.resolve import MemberResolver, split_member


class FakeNameResolver:
    """Answers from a dict name -> list of IPs; a missing name resolves to nothing."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def resolveHostName(self, receiver, host, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        self.asked.append(host)
        receiver.resolutionBegan(None)
        for ip in self.answers.get(host, []):
            cls = IPv6Address if ":" in ip else IPv4Address
            receiver.addressResolved(cls("TCP", ip, portNumber))
        receiver.resolutionComplete()
        return None


class FakePool:
    """Records the addresses the resolver sets, as a BalancedPool would receive them."""

    def __init__(self, config):
        self.config = config
        self.name = config.name
        self.addresses = []
        self.calls = 0

    def set_addresses(self, addresses):
        self.addresses = list(addresses)
        self.calls += 1


def make(members, answers, interval=30.0, weights=()):
    clock = Clock()
    pool = Pool(name="p", members=tuple(members), weights=tuple(weights), resolve_interval=interval)
    backend = FakePool(pool)
    names = FakeNameResolver(answers)
    return clock, backend, names, MemberResolver(clock, names, backend)


def addresses(backend):
    return [(address[0], address[1]) for address in backend.addresses]


class ResolverTests(unittest.TestCase):
    def test_split_member(self):
        """Member URLs give (host, port), IPv6 brackets removed, port 80 by default."""
        self.assertEqual(split_member("http://[::1]:81"), ("::1", 81))
        self.assertEqual(split_member("http://backend.test"), ("backend.test", 80))

    def test_ip_members_need_no_dns(self):
        """IP literals become members at once; nothing is scheduled."""
        clock, backend, names, resolver = make(["http://127.0.0.1:1", "http://[::1]:2"], {})
        resolver.start()
        self.assertEqual(addresses(backend), [("127.0.0.1", 1), ("::1", 2)])
        self.assertEqual(names.asked, [])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_every_address_becomes_a_member_and_is_refreshed(self):
        """A name with two addresses gives two members; re-resolution follows DNS changes."""
        clock, backend, names, resolver = make(
            ["http://svc.test:8080"], {"svc.test": ["10.0.0.2", "10.0.0.1"]}, interval=30)
        resolver.start()
        self.assertEqual(addresses(backend), [("10.0.0.1", 8080), ("10.0.0.2", 8080)])
        names.answers["svc.test"] = ["10.0.0.1", "10.0.0.3"]
        clock.advance(29)
        self.assertEqual(len(names.asked), 1)
        clock.advance(1)
        self.assertEqual(addresses(backend), [("10.0.0.1", 8080), ("10.0.0.3", 8080)])

    def test_weights_follow_their_url(self):
        """Each address carries the weight configured for the URL it came from."""
        clock, backend, names, resolver = make(
            ["http://svc.test:80", "http://10.0.0.9:80"], {"svc.test": ["10.0.0.1", "10.0.0.2"]},
            weights=(3, 1))
        resolver.start()
        self.assertEqual(backend.addresses, [("10.0.0.1", 80, 3, None), ("10.0.0.2", 80, 3, None),
                                             ("10.0.0.9", 80, 1, None)])

    def test_https_members_carry_their_host_for_tls(self):
        """An https:// member's addresses carry the host its URL names (its TLS server name),
        port 443 by default; http:// ones carry None."""
        clock, backend, names, resolver = make(
            ["https://svc.test", "http://svc.test", "https://10.0.0.9:8443"],
            {"svc.test": ["10.0.0.1"]})
        resolver.start()
        self.assertEqual(backend.addresses, [("10.0.0.1", 443, 1, "svc.test"),
                                             ("10.0.0.1", 80, 1, None),
                                             ("10.0.0.9", 8443, 1, "10.0.0.9")])

    def test_failed_resolution_keeps_last_addresses(self):
        """A name that suddenly resolves to nothing keeps its previous members."""
        clock, backend, names, resolver = make(["http://svc.test:80"], {"svc.test": ["10.0.0.1"]})
        resolver.start()
        names.answers.clear()
        clock.advance(30)
        self.assertEqual(addresses(backend), [("10.0.0.1", 80)])
        resolver.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_resolver_replacing_another_inherits_its_last_addresses(self):
        """On reload a pool gets a new resolver: a name failing right then keeps the
        addresses the old resolver last found."""
        clock, backend, names, old = make(["http://svc.test:80"], {"svc.test": ["10.0.0.1"]})
        old.start()
        old.stop()
        names.answers.clear()
        fresh = MemberResolver(clock, names, backend)
        fresh.inherit(old)
        fresh.start()
        self.assertEqual(addresses(backend), [("10.0.0.1", 80)])
        fresh.stop()
