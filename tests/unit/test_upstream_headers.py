"""Tests for revproxy.upstream.headers: hop-by-hop stripping and forwarding headers."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.upstream.headers import (
    HOP_BY_HOP,
    ForwardingPolicy,
    client_response_headers,
    forwarded_element,
    new_request_id_factory,
    strip_hop_by_hop,
)

Headers = List[Tuple[bytes, bytes]]


def policy(trusted: Tuple[str, ...] = ("10.0.0.0/8", "fd00::/8")) -> ForwardingPolicy:
    return ForwardingPolicy("edge", trusted, b"X-Request-ID")


def rewrite(headers: Headers, client_ip: str = "192.0.2.7", **kwargs: object) -> Headers:
    args: Dict[str, object] = dict(client_ip=client_ip, client_port=5555, scheme="https",
                                   host=b"app.test", version=b"1.1", request_id=b"rid1",
                                   host_override=None, upgrade=None)
    args.update(kwargs)
    return policy().backend_request_headers(headers, **args)  # type: ignore[arg-type]


def values(headers: Headers, name: bytes) -> List[bytes]:
    return [v for n, v in headers if n == name]


def one(headers: Headers, name: bytes) -> Optional[bytes]:
    found = values(headers, name)
    assert len(found) <= 1, (name, found)
    return found[0] if found else None


class TestStrip:
    def test_fixed_hop_by_hop_fields_are_removed(self) -> None:
        """Every field of HOP_BY_HOP goes; end-to-end fields stay in order."""
        headers = [(name, b"x") for name in sorted(HOP_BY_HOP)]
        headers += [(b"accept", b"a"), (b"proxy-authenticate", b"Basic"), (b"accept", b"b")]
        assert strip_hop_by_hop(headers) == [
            (b"accept", b"a"), (b"proxy-authenticate", b"Basic"), (b"accept", b"b")]

    def test_fields_named_in_connection_are_removed(self) -> None:
        """Connection tokens (comma list, any case, several lines) name fields to drop."""
        headers = [(b"connection", b"X-Foo ,  x-bar,,"), (b"connection", b"X-BAZ"),
                   (b"x-foo", b"1"), (b"x-bar", b"2"), (b"x-baz", b"3"), (b"x-keep", b"4")]
        assert strip_hop_by_hop(headers) == [(b"x-keep", b"4")]

    def test_content_length_dropped_unless_asked_to_keep_framing(self) -> None:
        """drop_framing controls Content-Length; Transfer-Encoding always goes."""
        headers = [(b"content-length", b"3"), (b"transfer-encoding", b"chunked")]
        assert strip_hop_by_hop(headers) == []
        assert strip_hop_by_hop(headers, drop_framing=False) == [(b"content-length", b"3")]


class TestForwardingFromUntrustedPeer:
    def test_spoofed_forwarding_fields_are_replaced(self) -> None:
        """An untrusted client's X-Forwarded-*, Forwarded and request id are overwritten."""
        out = rewrite([(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-proto", b"http"),
                       (b"x-forwarded-host", b"evil"), (b"forwarded", b"for=1.1.1.1"),
                       (b"x-request-id", b"forged")])
        assert one(out, b"x-forwarded-for") == b"192.0.2.7"
        assert one(out, b"x-forwarded-proto") == b"https"
        assert one(out, b"x-forwarded-host") == b"app.test"
        assert one(out, b"forwarded") == b"for=192.0.2.7;proto=https;host=app.test"
        assert one(out, b"x-request-id") == b"rid1"

    def test_host_is_the_clients_unless_overridden(self) -> None:
        """Host is sent once: the client's Host, or host_override."""
        assert one(rewrite([(b"host", b"app.test")]), b"host") == b"app.test"
        out = rewrite([(b"host", b"app.test")], host_override=b"backend.internal")
        assert one(out, b"host") == b"backend.internal"
        assert one(out, b"x-forwarded-host") == b"app.test"

    def test_via_is_appended_to_incoming_via(self) -> None:
        """Via is end-to-end: kept from anyone, our entry last; 1.0 for HTTP/1.0 clients."""
        out = rewrite([(b"via", b"1.1 a"), (b"via", b"1.0 b (x, y)")], version=b"1.0")
        assert one(out, b"via") == b"1.1 a, 1.0 b (x, y), 1.0 edge"
        assert one(rewrite([]), b"via") == b"1.1 edge"

    def test_upgrade_is_announced_again(self) -> None:
        """With upgrade, Connection/Upgrade are re-added after stripping the client's."""
        out = rewrite([(b"connection", b"Upgrade, x-secret"), (b"upgrade", b"websocket"),
                       (b"x-secret", b"s")], upgrade=b"websocket")
        assert values(out, b"connection") == [b"upgrade"]
        assert values(out, b"upgrade") == [b"websocket"]
        assert values(out, b"x-secret") == []

    def test_no_upgrade_means_no_connection_header(self) -> None:
        """Without upgrade, no Connection/Upgrade reaches the backend."""
        out = rewrite([(b"connection", b"upgrade"), (b"upgrade", b"h2c")])
        assert values(out, b"connection") == [] and values(out, b"upgrade") == []

    def test_empty_host_omits_forwarded_host(self) -> None:
        """An HTTP/1.0 request without Host yields no X-Forwarded-Host nor host= param."""
        out = rewrite([], host=b"")
        assert one(out, b"x-forwarded-host") is None
        assert one(out, b"forwarded") == b"for=192.0.2.7;proto=https"
        assert one(out, b"host") == b""


class TestForwardingFromTrustedPeer:
    def test_trusted_chain_is_extended(self) -> None:
        """From a trusted peer X-Forwarded-For and Forwarded get our entry appended."""
        out = rewrite([(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
                       (b"forwarded", b"for=1.1.1.1")], client_ip="10.1.2.3")
        assert one(out, b"x-forwarded-for") == b"1.1.1.1, 2.2.2.2, 10.1.2.3"
        assert one(out, b"forwarded") == (
            b"for=1.1.1.1, for=10.1.2.3;proto=https;host=app.test")

    def test_trusted_proto_and_host_are_kept(self) -> None:
        """X-Forwarded-Proto/Host from a trusted peer are kept, defaults when absent."""
        out = rewrite([(b"x-forwarded-proto", b"http"), (b"x-forwarded-host", b"outer")],
                      client_ip="fd00::1")
        assert one(out, b"x-forwarded-proto") == b"http"
        assert one(out, b"x-forwarded-host") == b"outer"
        assert one(rewrite([], client_ip="10.0.0.1"), b"x-forwarded-proto") == b"https"

    def test_trusted_request_id_kept_only_when_sane(self) -> None:
        """A trusted peer's id is kept if 1-200 visible ASCII chars and not repeated."""
        p = policy()
        gen = lambda: b"fresh"  # noqa: E731
        assert p.request_id([(b"x-request-id", b"abc-1")], "10.0.0.1", gen) == b"abc-1"
        assert p.request_id([(b"x-request-id", b"abc-1")], "192.0.2.1", gen) == b"fresh"
        assert p.request_id([(b"x-request-id", b"a b")], "10.0.0.1", gen) == b"fresh"
        assert p.request_id([(b"x-request-id", b"a" * 201)], "10.0.0.1", gen) == b"fresh"
        assert p.request_id([(b"x-request-id", b"a" * 200)], "10.0.0.1", gen) == b"a" * 200
        assert p.request_id([(b"x-request-id", b"")], "10.0.0.1", gen) == b"fresh"
        two = [(b"x-request-id", b"a"), (b"x-request-id", b"b")]
        assert p.request_id(two, "10.0.0.1", gen) == b"fresh"


class TestTrust:
    def test_cidrs_and_mapped_addresses(self) -> None:
        """Addresses inside a CIDR are trusted, IPv4-mapped IPv6 too; garbage is not."""
        p = policy()
        assert p.is_trusted("10.255.0.1")
        assert p.is_trusted("::ffff:10.0.0.1")
        assert p.is_trusted("fd00::abcd")
        assert not p.is_trusted("11.0.0.1")
        assert not p.is_trusted("not-an-ip")
        assert p.is_trusted("10.255.0.1")  # answered again from the cache

    def test_nothing_trusted_by_default(self) -> None:
        """With no CIDRs nobody is trusted."""
        assert not policy(()).is_trusted("127.0.0.1")


class TestForwardedElement:
    def test_ipv6_is_bracketed_and_quoted(self) -> None:
        """RFC 7239 §6: an IPv6 node is written for="[::1]"."""
        assert forwarded_element("::1", "http", b"h") == b'for="[::1]";proto=http;host=h'

    def test_host_with_port_is_quoted(self) -> None:
        """A host with ':' is not a token, so it is a quoted-string."""
        assert forwarded_element("1.2.3.4", "http", b"h:8080").endswith(b'host="h:8080"')


class TestViaLoop:
    def test_our_name_in_via_is_a_loop(self) -> None:
        """Any Via entry received-by our name (any case) is detected, comments skipped."""
        p = policy()
        assert p.via_names_us([(b"via", b"1.1 a, HTTP/1.1 EDGE (revproxy, x)")])
        assert p.via_names_us([(b"via", b"1.0 x"), (b"via", b"1.1 edge")])

    def test_other_names_and_comments_are_not_a_loop(self) -> None:
        """Our name in a comment or as a protocol is not a loop."""
        p = policy()
        assert not p.via_names_us([(b"via", b"1.1 a (edge), 1.1 edgex, edge/1.1 b")])
        assert not p.via_names_us([(b"via", b"1.1 a ((edge) nested, edge)")])
        assert not p.via_names_us([])


class TestResponse:
    def test_response_headers_stripped_and_via_appended(self) -> None:
        """Hop-by-hop and framing go, set-cookie lines all stay in order, Via appended."""
        headers = [(b"set-cookie", b"a=1"), (b"connection", b"close, x-int"),
                   (b"x-int", b"i"), (b"content-length", b"5"), (b"set-cookie", b"b=2"),
                   (b"via", b"1.1 backend")]
        out = client_response_headers(headers, proxy_name="edge", version=b"1.0")
        assert out == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
                       (b"via", b"1.1 backend, 1.0 edge")]

    def test_switching_protocols_re_adds_upgrade(self) -> None:
        """For a 101, Connection: upgrade and Upgrade are sent back to the client."""
        out = client_response_headers([(b"connection", b"Upgrade"), (b"upgrade", b"websocket")],
                                      proxy_name="edge", version=b"1.1", upgrade=b"websocket")
        assert out == [(b"via", b"1.1 edge"), (b"connection", b"upgrade"),
                       (b"upgrade", b"websocket")]


def test_request_id_factory_makes_32_hex_digits_from_16_bytes() -> None:
    """The factory asks for 16 random bytes and hex-encodes them."""
    asked: List[int] = []

    def randbytes(n: int) -> bytes:
        asked.append(n)
        return bytes(range(n))

    assert new_request_id_factory(randbytes)() == b"000102030405060708090a0b0c0d0e0f"
    assert asked == [16]


# --- properties --------------------------------------------------------------------

NAMES = st.sampled_from(sorted(HOP_BY_HOP) + [b"accept", b"x-a", b"x-b", b"cookie",
                                              b"content-length", b"set-cookie"])
HEADER_LISTS = st.lists(st.tuples(NAMES, st.sampled_from([b"1", b"x-a", b"X-B, te", b""])),
                        max_size=10)


@settings(max_examples=200)
@given(HEADER_LISTS)
def test_strip_keeps_exactly_the_end_to_end_fields_in_order(headers: Headers) -> None:
    """No hop-by-hop or Connection-named field survives; every other line does, in order."""
    named = {t.strip().lower() for n, v in headers if n == b"connection" for t in v.split(b",")}
    out = strip_hop_by_hop(headers)
    expected = [(n, v) for n, v in headers
                if n not in HOP_BY_HOP and n not in named and n != b"content-length"]
    assert out == expected
    assert not any(n in HOP_BY_HOP or n in named for n, _ in out)


@settings(max_examples=200)
@given(HEADER_LISTS, st.sampled_from(["10.0.0.1", "192.0.2.1", "::1"]))
def test_backend_headers_keep_end_to_end_fields(headers: Headers, ip: str) -> None:
    """Backend headers: no hop-by-hop field, every plain end-to-end line kept in order."""
    out = rewrite(headers, client_ip=ip)
    named = {t.strip().lower() for n, v in headers if n == b"connection" for t in v.split(b",")}
    plain = [(n, v) for n, v in headers if n in (b"accept", b"x-a", b"x-b", b"cookie",
                                                 b"set-cookie") and n not in named]
    assert [(n, v) for n, v in out if n in {p[0] for p in plain}] == plain
    assert not any(n in HOP_BY_HOP or n == b"content-length" for n, _ in out)
