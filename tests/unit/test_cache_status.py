"""The Cache-Status field (RFC 9211, RFC 8941 syntax)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.cache.status import FWD_REASONS, cache_status

# RFC 8941 §3.1.2: bare-item; then parameters ";" *SP key [ "=" bare-item ]
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'
_BARE = r"(?:-?[0-9]{1,15}|" + _STRING + r"|[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|\?[01])"
_MEMBER = re.compile(_BARE + r"(?:; ?" + _KEY + r"(?:=" + _BARE + r")?)*\Z")


def test_hit_with_ttl():
    """RFC 9211 §2.1, §2.5: a hit with its remaining freshness."""
    assert cache_status(hit=True, ttl=42) == b"revproxy; hit; ttl=42"


def test_forward_miss_stored():
    """RFC 9211 §2.2-2.4, §2.6: forwarded, the origin's status, and stored."""
    assert cache_status(fwd="uri-miss", fwd_status=200, stored=True) == \
        b"revproxy; fwd=uri-miss; fwd-status=200; stored"


def test_negative_ttl_for_stale_is_floored():
    """RFC 9211 §2.5: ttl is an integer, negative when stale."""
    assert cache_status(hit=True, ttl=-0.5) == b"revproxy; hit; ttl=-1"
    assert cache_status(ttl=41.9) == b"revproxy; ttl=41"


def test_key_and_detail_are_quoted_strings():
    """RFC 9211 §2.7-2.8 / RFC 8941 §3.3.3: strings escape backslash and quote."""
    out = cache_status(collapsed=True, fwd="miss", key='/a"b\\c', detail="not a token")
    assert out == b'revproxy; fwd=miss; collapsed; key="/a\\"b\\\\c"; detail="not a token"'


def test_detail_token_stays_a_token():
    """RFC 9211 §2.8: detail may be a token."""
    assert cache_status(fwd="stale", detail="revalidated") == \
        b"revproxy; fwd=stale; detail=revalidated"


def test_non_token_cache_name_is_a_string():
    """RFC 9211 §2: the cache is identified by a token or a string."""
    assert cache_status("edge cache", hit=True) == b'"edge cache"; hit'


def test_unknown_fwd_is_refused():
    """RFC 9211 §2.2: fwd takes one of the registered reasons."""
    with pytest.raises(ValueError):
        cache_status(fwd="because")


def test_non_ascii_is_percent_escaped():
    """RFC 8941 §3.3.3: sf-string is printable ASCII only."""
    assert cache_status(key=b"/\xe9\n") == b'revproxy; key="/%E9%0A"'


@settings(max_examples=200)
@given(st.booleans(), st.one_of(st.none(), st.sampled_from(sorted(FWD_REASONS))),
       st.one_of(st.none(), st.integers(100, 599)),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       st.booleans(), st.booleans(), st.one_of(st.none(), st.text(max_size=20)),
       st.one_of(st.none(), st.text(max_size=20)))
def test_always_a_valid_list_member(hit, fwd, fwd_status, ttl, stored, collapsed, key, detail):
    """Whatever the inputs, the output is one RFC 8941 list member."""
    out = cache_status(hit=hit, fwd=fwd, fwd_status=fwd_status, ttl=ttl, stored=stored,
                       collapsed=collapsed, key=key, detail=detail)
    assert _MEMBER.match(out.decode("ascii")), out
