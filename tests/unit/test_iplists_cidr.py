"""IP list entries and the matcher: parsing, IPv4-mapped peers, and agreement with a naive
``ipaddress`` scan for random lists and addresses."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from revproxy.protection.cidr import IPV4, IPV6, AddressMatcher, RangeSet, parse_entry, peer_key

MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def naive_network(net):
    """An entry as the matcher means it: IPv4-mapped IPv6 blocks of /96 or longer are IPv4."""
    if net.version == 6 and net.prefixlen >= 96 and net.subnet_of(MAPPED):
        first = int(net.network_address) - int(MAPPED.network_address)
        return ipaddress.ip_network((first, net.prefixlen - 96))
    return net


def naive_contains(networks, host):
    address = ipaddress.ip_address(host.split("%")[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net
               for net in map(naive_network, networks))


@st.composite
def networks(draw):
    version = draw(st.sampled_from([4, 6, 6]))
    if version == 4:
        prefix = draw(st.integers(8, 32))
        value = draw(st.integers(0, 2 ** 32 - 1))
        return ipaddress.ip_network((value >> (32 - prefix) << (32 - prefix), prefix))
    prefix = draw(st.integers(0, 128))
    if draw(st.booleans()):  # often inside ::ffff:0:0/96, where IPv4 lives too
        value = int(MAPPED.network_address) | draw(st.integers(0, 2 ** 32 - 1))
        prefix = draw(st.integers(90, 128))
    else:
        value = draw(st.integers(0, 2 ** 128 - 1))
    return ipaddress.ip_network((value >> (128 - prefix) << (128 - prefix), prefix))


@st.composite
def hosts(draw, near=()):
    """Peer addresses as transports report them: IPv4, IPv6, IPv4-mapped IPv6; often inside
    or just outside one of the ``near`` networks, to hit the edges."""
    if near and draw(st.booleans()):
        net = draw(st.sampled_from(near))
        edge = draw(st.sampled_from([int(net.network_address), int(net.broadcast_address)]))
        value = edge + draw(st.sampled_from([-1, 0, 1]))
        bits = 32 if net.version == 4 else 128
        address = ipaddress.ip_address(value % 2 ** bits if net.version == 4 else
                                       ipaddress.IPv6Address(value % 2 ** bits))
    elif draw(st.booleans()):
        address = ipaddress.IPv4Address(draw(st.integers(0, 2 ** 32 - 1)))
    else:
        address = ipaddress.IPv6Address(draw(st.integers(0, 2 ** 128 - 1)))
    if address.version == 4 and draw(st.booleans()):
        return "::ffff:%s" % address
    return str(address)


class MatcherAgreesWithNaiveScanTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_matcher_agrees_with_ipaddress_scan(self, data):
        """For random lists of v4/v6 blocks (many inside ::ffff:0:0/96) and random peers,
        often at a block's edges, the matcher answers what a linear ipaddress scan does."""
        nets = data.draw(st.lists(networks(), max_size=30))
        matcher = AddressMatcher(parse_entry(str(net)) for net in nets)
        for host in data.draw(st.lists(hosts(tuple(nets)), min_size=1, max_size=20)):
            self.assertEqual(matcher.matches(host), naive_contains(nets, host), (nets, host))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=40),
           st.integers(-5, 400))
    def test_range_set_agrees_with_any(self, spans, value):
        """Merged ranges contain exactly the values some input range contains."""
        ranges = [(first, first + width) for first, width in spans]
        self.assertEqual(value in RangeSet(ranges),
                         any(first <= value <= last for first, last in ranges))


class ParseEntryTests(unittest.TestCase):
    def test_address_and_blocks(self):
        """A bare address is a one-address range; blocks cover network to broadcast."""
        self.assertEqual(parse_entry("192.0.2.7"), (IPV4, 0xC0000207, 0xC0000207))
        self.assertEqual(parse_entry("192.0.2.0/24"), (IPV4, 0xC0000200, 0xC00002FF))
        self.assertEqual(parse_entry("2001:db8::/32"),
                         (IPV6, 0x20010DB8 << 96, (0x20010DB8 << 96) | (2 ** 96 - 1)))

    def test_mapped_block_is_ipv4(self):
        """::ffff:192.0.2.0/120 is the IPv4 block 192.0.2.0/24."""
        self.assertEqual(parse_entry("::ffff:192.0.2.0/120"), parse_entry("192.0.2.0/24"))

    def test_host_bits_set_refused_with_a_suggestion(self):
        """10.0.0.1/8 is refused and the message names 10.0.0.0/8."""
        with self.assertRaises(ValueError) as caught:
            parse_entry("10.0.0.1/8")
        self.assertIn("did you mean 10.0.0.0/8", str(caught.exception))

    def test_garbage_refused(self):
        """Bad addresses, prefixes, leading zeros, spaces and zone indexes are refused."""
        for text in ("10.0.0.300", "10.0.0.0/33", "01.2.3.4", "example.com", "", " 1.2.3.4",
                     "fe80::1%eth0", "1.2.3.4/x", "::1/129"):
            with self.assertRaises(ValueError, msg=text):
                parse_entry(text)


class PeerKeyTests(unittest.TestCase):
    def test_mapped_peer_is_ipv4(self):
        """A dual-stack socket's ::ffff:a.b.c.d peer is the IPv4 address a.b.c.d."""
        self.assertEqual(peer_key("::ffff:192.0.2.7"), peer_key("192.0.2.7"))
        self.assertEqual(peer_key("192.0.2.7"), (IPV4, 0xC0000207))

    def test_zone_index_ignored_and_non_ip_is_none(self):
        """A link-local zone is dropped; a unix socket's peer (no IP) gives None."""
        self.assertEqual(peer_key("fe80::1%eth0"), peer_key("fe80::1"))
        self.assertIsNone(peer_key(""))
        self.assertIsNone(peer_key("/tmp/sock"))
        self.assertNotIn(None, AddressMatcher([parse_entry("0.0.0.0/0")]))

    def test_any_ipv6_block_does_not_cover_ipv4(self):
        """::/0 matches IPv6 peers only, not IPv4 nor IPv4-mapped ones."""
        matcher = AddressMatcher([parse_entry("::/0")])
        self.assertTrue(matcher.matches("2001:db8::1"))
        self.assertFalse(matcher.matches("192.0.2.7"))
        self.assertFalse(matcher.matches("::ffff:192.0.2.7"))

    def test_union_and_counts(self):
        """A union holds both matchers' addresses; adjacent blocks merge into one range."""
        a = AddressMatcher([parse_entry("10.0.0.0/25")])
        b = AddressMatcher([parse_entry("10.0.0.128/25"), parse_entry("2001:db8::/64")])
        union = AddressMatcher.union([a, b])
        self.assertEqual((union.entries, len(union)), (3, 2))
        self.assertTrue(union.matches("10.0.0.200"))
        self.assertTrue(union.matches("2001:db8::5"))
        self.assertFalse(union.matches("10.0.1.0"))
