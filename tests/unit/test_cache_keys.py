"""Cache keys: effective URI first (prefix purge), query modes, configured headers/cookies."""

from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from revproxy.cache.keys import effective_uri, primary_key
from revproxy.config.model import Cache


def test_host_lowercased_and_default_port_dropped():
    """Host case and an explicit default port do not split the cache."""
    a = primary_key(b"http", b"Example.COM:80", "/a", None, Cache(), [])
    b = primary_key(b"http", b"example.com", "/a", None, Cache(), [])
    assert a == b == b"http://example.com/a"
    assert primary_key(b"http", b"example.com:8080", "/a", None, Cache(), []) == b"http://example.com:8080/a"


def test_query_modes():
    """keep: as sent; sorted: parameter order ignored; ignore: query dropped."""
    keep = Cache(key_query="keep")
    assert primary_key(b"http", b"h", "/p", "b=2&a=1", keep, []) == b"http://h/p?b=2&a=1"
    ordered = Cache(key_query="sorted")
    assert (primary_key(b"http", b"h", "/p", "b=2&a=1", ordered, [])
            == primary_key(b"http", b"h", "/p", "a=1&b=2", ordered, []))
    assert primary_key(b"http", b"h", "/p", "x", Cache(key_query="ignore"), []) == b"http://h/p"
    assert primary_key(b"http", b"h", "/p", "", keep, []) == b"http://h/p?"


def test_configured_headers_and_cookies_split_keys():
    """key_headers / key_cookies put those values in the key, after the URI."""
    config = Cache(key_headers=("x-tenant",), key_cookies=("lang",))
    a = primary_key(b"http", b"h", "/", None, config, [(b"x-tenant", b"a"), (b"cookie", b"lang=fr")])
    b = primary_key(b"http", b"h", "/", None, config, [(b"x-tenant", b"b"), (b"cookie", b"lang=fr")])
    assert a != b
    assert a.startswith(b"http://h/\x00")


@hsettings(max_examples=100)
@given(st.text(alphabet="abc/", min_size=1).map(lambda s: "/" + s),
       st.one_of(st.none(), st.text(alphabet="ab=&", max_size=8)))
def test_key_starts_with_effective_uri(path, query):
    """Every key begins with the effective URI (without extras), so URL prefix purge works."""
    key = primary_key(b"http", b"h", path, query, Cache(), [])
    assert key == effective_uri(b"http", b"h", path, query)
