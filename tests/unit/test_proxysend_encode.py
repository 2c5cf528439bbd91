"""The PROXY header encoders (``encode_v1`` / ``encode_v2``): what they write parses back
to the same addresses; unknown addresses give UNKNOWN / LOCAL; mixed families are mapped
into IPv6 as HAProxy does; bad addresses raise ValueError; and the header a member
connection opens with for a client (``upstream.proxysend``)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revproxy.pipeline.context import PeerFacts
from revproxy.server.proxyproto import (
    LOCAL, PROXY, V2_SIGNATURE, HeaderParser, encode_v1, encode_v2,
)
from revproxy.upstream.proxysend import (
    V1, V2, client_key, header_addresses, preface, probe_preface,
)

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


def parse(data: bytes):
    return HeaderParser().feed(data)


@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), ports, ports,
       st.sampled_from([encode_v1, encode_v2]), st.binary(max_size=8))
def test_round_trip_through_the_parser(hosts, sport, dport, encode, rest):
    """Any address pair of one family, any ports, either version: the parser reads back
    exactly the canonical addresses, and the bytes after the header are untouched."""
    src, dst = hosts
    header, after = parse(encode((src, sport), (dst, dport)) + rest)
    assert header.command == PROXY
    assert header.source == (str(ipaddress.ip_address(src)), sport)
    assert header.destination == (str(ipaddress.ip_address(dst)), dport)
    assert header.family == ("TCP4" if ":" not in src else "TCP6")
    assert after == rest


@given(ipv4, ipv6, ports, ports, st.sampled_from([encode_v1, encode_v2]), st.booleans())
def test_mixed_families_are_sent_as_ipv6(v4, v6, sport, dport, encode, v4_first):
    """One IPv4 and one IPv6 address: the IPv4 one is mapped (::ffff:a.b.c.d), TCP6."""
    pair = ((v4, sport), (v6, dport)) if v4_first else ((v6, sport), (v4, dport))
    header, _ = parse(encode(*pair))
    assert header.family == "TCP6"
    mapped = str(ipaddress.IPv6Address("::ffff:" + v4))
    got = header.source[0] if v4_first else header.destination[0]
    assert got == mapped


def test_unknown_addresses():
    """No address: v1 says UNKNOWN, v2 LOCAL with the UNSPEC family (HAProxy's choice);
    both parse as 'keep the connection's own endpoints'."""
    assert encode_v1(None, None) == b"PROXY UNKNOWN\r\n"
    assert encode_v1(("1.2.3.4", 1), None) == b"PROXY UNKNOWN\r\n"
    v2 = encode_v2(None, ("1.2.3.4", 1))
    assert v2 == V2_SIGNATURE + b"\x20\x00\x00\x00"
    header, rest = parse(v2 + b"GET")
    assert header.command == LOCAL and header.source is None and rest == b"GET"
    assert parse(encode_v1(None, None))[0].source is None


def test_exact_bytes():
    assert encode_v1(("203.0.113.7", 51234), ("10.0.0.1", 443)) == \
        b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\n"
    v2 = encode_v2(("203.0.113.7", 51234), ("10.0.0.1", 443))
    assert v2[:12] == V2_SIGNATURE
    assert v2[12:16] == b"\x21\x11\x00\x0c"
    assert v2[16:] == bytes([203, 0, 113, 7, 10, 0, 0, 1]) + struct.pack("!HH", 51234, 443)


def test_zone_index_is_dropped():
    """A link-local peer with a zone (fe80::1%eth0) is sent without it (no room for it)."""
    header, _ = parse(encode_v1(("fe80::1%eth0", 1), ("fe80::2", 2)))
    assert header.source == ("fe80::1", 1)


@pytest.mark.parametrize("source, destination", [
    (("not-an-ip", 1), ("1.2.3.4", 2)),
    (("1.2.3.4", 65536), ("1.2.3.4", 2)),
    (("1.2.3.4", -1), ("1.2.3.4", 2)),
    (("1.2.3.4", "80"), ("1.2.3.4", 2)),
])
def test_bad_addresses_raise(source, destination):
    for encode in (encode_v1, encode_v2):
        with pytest.raises(ValueError):
            encode(source, destination)


# -- the header of a member connection -------------------------------------------------------
class _Host:
    def __init__(self, host, port):
        self.host, self.port = host, port


def test_header_names_the_client_and_the_address_it_connected_to():
    """The source is the PeerFacts client; the destination its local address, asked of the
    transport once (lazily) and remembered."""
    calls = []

    def get_host():
        calls.append(1)
        return _Host("10.0.0.1", 8080)

    peer = PeerFacts("203.0.113.7", 40000, local=get_host)
    assert calls == []
    assert preface(V1, peer) == b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 8080\r\n"
    assert header_addresses(peer) == (("203.0.113.7", 40000), ("10.0.0.1", 8080))
    assert client_key(peer) == ("203.0.113.7", 40000, "10.0.0.1", 8080)
    assert calls == [1]
    header, _ = parse(preface(V2, peer))
    assert header.source == ("203.0.113.7", 40000)
    assert header.destination == ("10.0.0.1", 8080)


def test_destination_of_a_trusted_proxy_header_is_used():
    """A client behind a PROXY-speaking balancer: both addresses come from its header."""
    peer = PeerFacts("198.51.100.20", 5000, local=("192.0.2.1", 443))
    assert preface(V1, peer) == b"PROXY TCP4 198.51.100.20 192.0.2.1 5000 443\r\n"


def test_unix_listener_client_sends_unknown_and_keys_by_connection():
    """No IP address (a Unix-socket listener, or getHost failing on a closed socket):
    UNKNOWN / LOCAL, and the key is the connection's own PeerFacts (never shared)."""

    def closed():
        raise OSError("bad file descriptor")

    unix = PeerFacts("", 0, local=lambda: _UnixAddress())
    gone = PeerFacts("127.0.0.1", 1, local=closed)
    for peer in (unix, gone):
        assert preface(V1, peer) == b"PROXY UNKNOWN\r\n"
        assert parse(preface(V2, peer))[0].command == LOCAL
        assert client_key(peer) is peer
    assert client_key(unix) != client_key(PeerFacts("", 0, local=lambda: _UnixAddress()))


class _UnixAddress:
    name = b"/run/proxy.sock"


def test_probe_preface():
    assert probe_preface(V1) == b"PROXY UNKNOWN\r\n"
    assert parse(probe_preface(V2))[0].command == LOCAL
