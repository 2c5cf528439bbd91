"""SecLang transformations: ModSecurity v3's documented behaviour and decoder properties."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.firewall.seclang.transforms import TRANSFORMS as T

CASES = [
    ("urldecode", b"a%41%zz%4+b%", b"aA%zz%4 b%"),
    ("urldecode", b"%2B+", b"+ "),
    ("urldecodeuni", b"%u0041%uFF21%41%u12%", b"AAA%u12%"),
    ("urldecodeuni", b"%uff0e%uff0e%u2215", b"..\x15"),
    ("htmlentitydecode", b"&#x41;&#66&lt&gt;&QUOT;&amp;&nbsp;", b'AB<>"&\xa0'),
    ("htmlentitydecode", b"&ampx; &#; &#x; &unknown;", b"&ampx; &#; &#x; &unknown;"),
    ("htmlentitydecode", b"&#999999999999999999999999;&#x100;", b"\xff\x00"),
    ("jsdecode", b"\\x41\\u0042\\101\\477\\n\\q\\uff41\\", b"AB A'7\nqa\\".replace(b" ", b"")),
    ("cssdecode", b"ja\\vascript \\41 x\\00ff21\\\n.\\", b"javascript AxA."),
    ("escapeseqdecode", b"\\x41\\101\\n\\q\\?\\", b"AA\nq?\\"),
    ("cmdline", b"C^O\"M\"MAND /c  ;, (x)", b"command/c(x)"),
    ("cmdline", b"net\tuser,admin", b"net user admin"),
    ("compresswhitespace", b"a \t\n\xa0b  c", b"a b c"),
    ("removewhitespace", b" a\tb\xa0c\n", b"abc"),
    ("removenulls", b"a\0b\0", b"ab"),
    ("replacenulls", b"a\0b", b"a b"),
    ("replacecomments", b"a/*b*/c/*d", b"a c "),
    ("removecommentschar", b"a/*b*/c--d#e<!--f-->", b"abcdef"),
    ("removecomments", b"x/*c*/yz -- rest", b"xyz "),
    ("removecomments", b"a/*b*/", b"a\0"),
    ("lowercase", b"AbC\xc9", b"abc\xc9"),
    ("uppercase", b"aBc", b"ABC"),
    ("trim", b" \t a b \n", b"a b"),
    ("trimleft", b"  a ", b"a "),
    ("trimright", b"  a ", b"  a"),
    ("length", b"ABCDE", b"5"),
    ("hexencode", b"xyz", b"78797a"),
    ("hexdecode", b"78797a", b"xyz"),
    ("hexdecode", b"414", b"A"),
    ("sqlhexdecode", b"0x414243 0x4", b"ABC 0x4"),
    ("base64decode", b"SGVsbG8=garbage", b"Hello"),
    ("base64decode", b"SGVs\r\nbG8", b"Hello"),
    ("base64decodeext", b"S.G.V.s.b.G.8", b"Hello"),
    ("base64encode", b"Hello", b"SGVsbG8="),
    ("urlencode", b"a b+c*/", b"a+b%2bc*%2f"),
    ("utf8tounicode", b"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff", b"a%u00e9%u20ac%u1f600\xff"),
    ("normalizepath", b"/a//b/./c/../d", b"/a/b/d"),
    ("normalizepath", b"/../../etc/passwd", b"/etc/passwd"),
    ("normalizepath", b"../../etc/passwd", b"../../etc/passwd"),
    ("normalizepath", b"a/./b/.", b"a/b"),
    ("normalisepathwin", b"c:\\windows\\..\\x\\", b"c:/x/"),
    ("parityzero7bit", b"\xc1", b"A"),
]


@pytest.mark.parametrize("name,data,expected", CASES)
def test_transformation_examples(name, data, expected):
    """Each transformation turns the documented input into ModSecurity's output."""
    assert T[name](data) == expected


def test_hashes_are_raw_digests():
    """md5 and sha1 give the raw binary digest (hexEncode prints them)."""
    assert T["md5"](b"x") == hashlib.md5(b"x").digest()
    assert T["hexencode"](T["sha1"](b"x")) == hashlib.sha1(b"x").hexdigest().encode()


def test_every_crs_transformation_is_present_and_none_is_not():
    """The CRS's transformations are all registered; ``none`` is the engine's job."""
    for name in ("urldecodeuni", "lowercase", "jsdecode", "htmlentitydecode", "utf8tounicode",
                 "removenulls", "cssdecode", "cmdline", "removewhitespace", "replacecomments",
                 "normalizepath", "escapeseqdecode", "compresswhitespace", "normalizepathwin",
                 "length", "base64decode", "sha1", "hexencode", "removecommentschar"):
        assert name in T
    assert "none" not in T


@pytest.mark.parametrize("name", sorted(T))
def test_unchanged_input_is_returned_as_the_same_object(name):
    """When nothing changes the very input object comes back (the engine caches by it)."""
    data = b"plainword"
    out = T[name](data)
    if out == data:
        assert out is data


binary = st.binary(max_size=200)


@settings(max_examples=200, deadline=None)
@given(binary)
def test_decoders_never_raise_and_never_grow(data):
    """Decoders accept any bytes and never return more bytes than they got."""
    for name in ("urldecode", "urldecodeuni", "htmlentitydecode", "jsdecode", "cssdecode",
                 "escapeseqdecode", "hexdecode", "base64decode", "base64decodeext",
                 "sqlhexdecode", "removenulls", "removewhitespace", "compresswhitespace",
                 "replacecomments", "removecommentschar", "cmdline", "trim",
                 "normalizepath", "normalizepathwin"):
        assert len(T[name](data)) <= len(data), name


@settings(max_examples=200, deadline=None)
@given(binary)
def test_every_transformation_takes_any_bytes(data):
    """No transformation raises, whatever the bytes."""
    for name, fn in T.items():
        assert isinstance(fn(data), bytes), name


@settings(deadline=None)
@given(binary)
def test_url_round_trip(data):
    """urlDecode(urlEncode(x)) == x, and urlDecodeUni agrees on encoded input."""
    assert T["urldecode"](T["urlencode"](data)) == data
    assert T["urldecodeuni"](T["urlencode"](data)) == data


@settings(deadline=None)
@given(binary)
def test_hex_and_base64_round_trips(data):
    """hexDecode(hexEncode(x)) == x; base64Decode(base64Encode(x)) == x (both decoders)."""
    assert T["hexdecode"](T["hexencode"](data)) == data
    assert T["base64decode"](T["base64encode"](data)) == data
    assert T["base64decodeext"](T["base64encode"](data)) == data
    assert T["base64encode"](data) == base64.b64encode(data)


@settings(deadline=None)
@given(binary)
def test_idempotent_transformations(data):
    """Applying these twice is applying them once."""
    for name in ("lowercase", "uppercase", "compresswhitespace", "removewhitespace", "trim",
                 "trimleft", "trimright", "removenulls", "replacenulls", "cmdline",
                 "normalizepath", "normalizepathwin", "removecommentschar"):
        once = T[name](data)
        assert T[name](once) == once, name


@settings(deadline=None)
@given(st.binary(max_size=100).filter(lambda b: b"\\" not in b and b"." not in b))
def test_paths_without_dots_or_double_slashes_are_untouched(data):
    """normalizePath changes nothing when there is nothing to normalise."""
    if b"//" not in data:
        assert T["normalizepath"](data) is data


def test_escape_decoders_are_fast_on_large_input():
    """A 1 MiB input of escapes decodes in one regex pass (no quadratic behaviour)."""
    import time
    data = b"%41\\x41&#65;" * 90000
    start = time.perf_counter()
    for name in ("urldecodeuni", "jsdecode", "htmlentitydecode", "cssdecode"):
        T[name](data)
    assert time.perf_counter() - start < 60  # quadratic would take hours


def _reference_base64_decode(data: bytes) -> bytes:
    """The decoder before binascii was called directly (through base64.b64decode)."""
    import re as _re
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    chars = _re.match(b"[A-Za-z0-9+/]*", data).group(0)
    if len(chars) % 4 == 1:
        chars = chars[:-1]
    chars += b"=" * (-len(chars) % 4)
    return base64.b64decode(chars)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=24),
                 st.binary(max_size=18).map(base64.b64encode),
                 st.lists(st.sampled_from([b"QQ", b"==", b"\r\n", b"-", b"+/", b"a"]),
                          max_size=8).map(b"".join)))
def test_base64_decode_is_the_reference_decoder(data):
    assert T["base64decode"](data) == _reference_base64_decode(data)
