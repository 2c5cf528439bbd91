"""The PROXY protocol header parser (v1 and v2): addresses, LOCAL, UNKNOWN, TLVs skipped,
malformed and truncated headers refused, any split of the bytes giving the same result."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revproxy.server.proxyproto import (
    LOCAL, MAX_V2_LENGTH, PROXY, V2_SIGNATURE, HeaderParser, ProxyHeaderError, v1_header,
    v2_header,
)


def parse(data: bytes):
    return HeaderParser().feed(data)


def test_v1_tcp4():
    header, rest = parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n")
    assert (header.version, header.command, header.family) == (1, PROXY, "TCP4")
    assert header.source == ("203.0.113.7", 51234)
    assert header.destination == ("10.0.0.1", 443)
    assert rest == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_is_normalised():
    header, rest = parse(b"PROXY TCP6 2001:DB8:0::1 ::1 1 65535\r\n")
    assert header.source == ("2001:db8::1", 1)
    assert header.destination == ("::1", 65535)
    assert rest == b""


def test_v1_unknown_gives_no_address():
    """UNKNOWN: the rest of the line is ignored, the TCP peer stays the client."""
    header, rest = parse(b"PROXY UNKNOWN ffff::1 whatever\r\nX")
    assert header.source is None and header.family == "UNKNOWN"
    assert rest == b"X"
    assert parse(b"PROXY UNKNOWN\r\n")[0].source is None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",      # extra field
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",          # missing field
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",       # double space
    b"PROXY TCP4 ::1 ::1 1 2\r\n",                # v6 address under TCP4
    b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",        # v4 address under TCP6
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",      # bad octet
    b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",       # leading zero in an octet
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",    # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",      # leading zero in a port
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",       # sign
    b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",       # zone index
    b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",        # not a v1 protocol
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",          # bare LF
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",         # no header at all
    b"PROXY " + b"A" * 120,                       # no CRLF within 107 bytes
])
def test_malformed_v1_is_refused(line):
    with pytest.raises(ProxyHeaderError):
        parse(line)


def test_v1_needs_more_until_crlf():
    parser = HeaderParser()
    assert parser.feed(b"PROX") is None
    assert parser.feed(b"Y TCP4 1.2.3.4 5.6.7.8 1 2\r") is None
    header, rest = parser.feed(b"\nabc")
    assert header.source == ("1.2.3.4", 1) and rest == b"abc"


def test_v2_tcp4_with_tlvs_skipped():
    """TLVs (here an AWS VPC endpoint id and a NOOP) are skipped without being read."""
    tlvs = b"\xea\x00\x05\x01vpce" + b"\x04\x00\x02\x00\x00"
    data = v2_header(("198.51.100.9", 40000), ("10.0.0.2", 8080), tlvs=tlvs) + b"\x16\x03\x01"
    header, rest = parse(data)
    assert (header.version, header.command, header.family) == (2, PROXY, "TCP4")
    assert header.source == ("198.51.100.9", 40000)
    assert header.destination == ("10.0.0.2", 8080)
    assert rest == b"\x16\x03\x01"


def test_v2_tcp6():
    header, _ = parse(v2_header(("2001:db8::7", 1), ("2001:db8::1", 443)))
    assert header.family == "TCP6" and header.source == ("2001:db8::7", 1)


def test_v2_local_gives_no_address():
    """LOCAL: the balancer's own connection (health checks): the TCP peer stays."""
    header, rest = parse(v2_header(None, None, local=True) + b"GET")
    assert header.command == LOCAL and header.source is None and rest == b"GET"


@pytest.mark.parametrize("family, name", [(0x00, "UNSPEC"), (0x12, "UDP4"), (0x31, "UNIX")])
def test_v2_families_without_a_usable_address(family, name):
    body = b"\x00" * 216
    header, _ = parse(V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body)
    assert header.family == name and header.source is None


@pytest.mark.parametrize("data, why", [
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "command"),
    (V2_SIGNATURE + b"\x21\x44\x00\x0c" + b"\x00" * 12, "family"),
    (V2_SIGNATURE + b"\x21\x11\x00\x08" + b"\x00" * 8, "12 bytes"),
    (V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12, "36 bytes"),
    (V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", MAX_V2_LENGTH + 1), "over"),
    (V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c", "no PROXY"),
])
def test_malformed_v2_is_refused(data, why):
    with pytest.raises(ProxyHeaderError) as info:
        parse(data)
    assert why in str(info.value)


def test_truncated_headers_wait_for_more():
    """Every proper prefix of a valid header asks for more bytes; none is an answer."""
    for full in (v1_header(("1.2.3.4", 5), ("6.7.8.9", 10)),
                 v2_header(("1.2.3.4", 5), ("6.7.8.9", 10), tlvs=b"\x04\x00\x01\x00")):
        for cut in range(len(full)):
            assert HeaderParser().feed(full[:cut]) is None, (full, cut)


addresses4 = st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535))
addresses6 = st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535))
pairs = st.one_of(st.tuples(addresses4, addresses4), st.tuples(addresses6, addresses6))


@given(pairs, st.booleans(), st.binary(max_size=40), st.data())
def test_any_split_gives_the_same_header(pair, v2, after, data):
    """A valid header cut anywhere into pieces gives its addresses and the bytes after it."""
    source, destination = pair
    full = (v2_header(source, destination) if v2 else v1_header(source, destination)) + after
    cuts = sorted(data.draw(st.lists(st.integers(0, len(full)), max_size=5)))
    parser = HeaderParser()
    result, start = None, 0
    for cut in cuts + [len(full)]:
        if result is None:
            result = parser.feed(full[start:cut])
            if result is not None:
                result = (result[0], result[1] + full[cut:])
        start = cut
    assert result is not None
    header, rest = result
    assert header.source == source and header.destination == destination
    assert rest == after


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data):
    """Garbage gives a header, a request for more bytes, or ProxyHeaderError: nothing else."""
    try:
        HeaderParser().feed(data)
    except ProxyHeaderError:
        pass
