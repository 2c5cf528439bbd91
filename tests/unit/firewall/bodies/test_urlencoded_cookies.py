"""URL-encoded bodies, query strings and cookies (ModSecurity v3 / Coraza semantics)."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.bodies import parse_cookies, parse_query, parse_urlencoded, url_decode


def test_pairs_split_on_ampersand_and_first_equals():
    """Pieces split on '&', a pair on its first '=', order and repeats kept."""
    result = parse_urlencoded(b"a=1&b=x=y&a=2", max_args=10)
    assert result.args == ((b"a", b"1"), (b"b", b"x=y"), (b"a", b"2"))
    assert result.flags["REQBODY_ERROR"] == 0 and "URLENCODED_ERROR" not in result.flags


def test_empty_pieces_skipped_and_bare_name_has_empty_value():
    """'&&' and a trailing '&' add nothing; a name without '=' has an empty value."""
    assert parse_query(b"&a&&=v&", 10).args == ((b"a", b""), (b"", b"v"))


def test_decoding_plus_and_escapes_with_invalid_kept():
    """'+' is a space, %XX decoded in names and values, an invalid escape kept and flagged."""
    result = parse_query(b"n%61me=a+b%27%zz%4", 10)
    assert result.args == ((b"name", b"a b'%zz%4"),)
    assert result.flags["URLENCODED_ERROR"] == 1


def test_decoded_percent_is_not_an_invalid_escape():
    """'%25' decodes to '%' without raising URLENCODED_ERROR."""
    result = parse_query(b"a=%2541", 10)
    assert result.args == ((b"a", b"%41"),) and "URLENCODED_ERROR" not in result.flags


def test_args_limit_keeps_the_first_and_flags():
    """Past max_args the pairs are dropped and ARGS_LIMIT_EXCEEDED raised."""
    result = parse_urlencoded(b"a=1&b=2&c=3", max_args=2)
    assert result.args == ((b"a", b"1"), (b"b", b"2"))
    assert result.flags["ARGS_LIMIT_EXCEEDED"] == 1
    assert "ARGS_LIMIT_EXCEEDED" not in parse_urlencoded(b"a=1&b=2", max_args=2).flags


simple = st.binary(min_size=0, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(simple.filter(bool), simple), max_size=8))
def test_round_trip_of_encoded_pairs(pairs):
    """Pairs percent-encoded and joined with '&' parse back to themselves."""
    body = b"&".join(quote_from_bytes(n, safe="").encode() + b"=" + quote_from_bytes(v, safe="").encode()
                     for n, v in pairs)
    result = parse_urlencoded(body, max_args=100)
    assert list(result.args) == pairs
    assert "URLENCODED_ERROR" not in result.flags


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=20))
def test_never_raises_and_bounded(data, limit):
    """Any bytes parse without raising, into at most max_args pairs."""
    result = parse_urlencoded(data, max_args=limit)
    assert len(result.args) <= limit
    decoded, _ = url_decode(data)
    assert len(decoded) <= len(data)


@given(st.lists(st.text(alphabet="ab=&%+2Fz", max_size=12).map(str.encode), max_size=6),
       st.integers(min_value=0, max_value=8))
def test_pieces_are_decoded_as_every_piece_through_url_decode(pieces, limit):
    """The parser decodes only the pieces holding "%" or "+" (none at all when the data
    holds neither): the same pairs and flags as decoding every name and value."""
    data = b"&".join(pieces)
    got = parse_urlencoded(data, max_args=limit)
    args, invalid, over = [], False, False
    for piece in data.split(b"&"):
        if not piece:
            continue
        if len(args) >= limit:
            over = True
            break
        name, _, value = piece.partition(b"=")
        (name, bad_name), (value, bad_value) = url_decode(name), url_decode(value)
        invalid = invalid or bad_name or bad_value
        args.append((name, value))
    assert list(got.args) == args
    assert got.flags.get("URLENCODED_ERROR", 0) == (1 if invalid else 0)
    assert got.flags.get("ARGS_LIMIT_EXCEEDED", 0) == (1 if over else 0)


def test_cookies_modsecurity_v3_rules():
    """Split on ';' only, name left-trimmed, value as sent, empty names skipped."""
    cookies = parse_cookies([b"a=1; B=x=y;c; =skip;  d = v ,e=2  ", b"f=%41"])
    assert cookies == ((b"a", b"1"), (b"B", b"x=y"), (b"c", b""), (b"d ", b" v ,e=2"),
                       (b"f", b"%41"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=3))
def test_cookies_never_raise_and_names_nonempty(values):
    """Any header bytes parse; every cookie has a non-empty name without leading space."""
    for name, value in parse_cookies(values):
        assert name and name[:1] not in b" \t\r\n\x0b\x0c"
