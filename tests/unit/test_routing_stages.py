"""Query/cookie matchers, traffic splitting, header edits, the security preset and error
pages (pure units of revproxy.routing)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revproxy.config.routemodel import Route, ValueMatch
from revproxy.routing.errorpages import ErrorPages, load_pages, PageError, wants_json
from revproxy.routing.headerops import HeaderOps, add_security_headers
from revproxy.routing.matchers import ValueCheck, cookie_value, cookies_hold, query_holds
from revproxy.routing.router import Router
from revproxy.routing.split import Split
from revproxy.routing.templates import TemplateValues, compile_template


# --- matchers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("query, check, expected", [
    ("a=1&beta=1", ValueCheck("beta", "1"), True),
    ("beta=2&beta=1", ValueCheck("beta", "1"), True),  # one of the repeated values
    ("beta=10", ValueCheck("beta", "1"), False),
    ("b%65ta=%31", ValueCheck("beta", "1"), True),  # percent-decoded
    ("q=a+b", ValueCheck("q", "a b"), True),
    ("beta", ValueCheck("beta"), True),  # present, empty value
    (None, ValueCheck("beta"), False),
    ("v=abc123", ValueCheck("v", regex=r"\d+$"), True),
])
def test_query_matcher(query, check, expected):
    """A query condition holds on a decoded parameter value."""
    assert query_holds((check,), query) is expected


def test_cookie_value_parsing():
    """Cookies from every Cookie field; the first of a name counts; quotes removed."""
    headers = [(b"cookie", b"a=1; b=\"two\""), (b"cookie", b"a=3; c=")]
    assert cookie_value(headers, "a") == "1"
    assert cookie_value(headers, "b") == "two"
    assert cookie_value(headers, "c") == ""
    assert cookie_value(headers, "d") is None
    assert cookies_hold((ValueCheck("b", "two"), ValueCheck("c")), headers)
    assert not cookies_hold((ValueCheck("a", "3"),), headers)


def test_router_uses_query_and_cookie_conditions():
    """A route with query/cookie conditions is skipped when they fail."""
    router = Router([
        Route(name="beta", pool="b", query=(ValueMatch("beta", "1"),)),
        Route(name="canary", pool="c", cookies=(ValueMatch("canary"),)),
        Route(name="rest", pool="r"),
    ])
    assert router.match(b"h", "/", b"GET", [], "beta=1").name == "beta"
    assert router.match(b"h", "/", b"GET", [(b"cookie", b"canary=yes")], "beta=2").name == "canary"
    assert router.match(b"h", "/", b"GET", []).name == "rest"


# --- split ------------------------------------------------------------------------------------
def test_split_converges_to_weights():
    """95/5 with a seeded rng: within half a point of the weights over 20000 draws."""
    split = Split([("v1", 95), ("v2", 5)])
    rng = random.Random(7)
    picks = [split.choose(rng.random, "1.2.3.4", [])[0] for _ in range(20000)]
    share = picks.count("v2") / len(picks)
    assert abs(share - 0.05) < 0.005


def test_split_zero_weight_never_chosen():
    split = Split([("v1", 0), ("v2", 3)])
    rng = random.Random(1)
    assert {split.choose(rng.random, "", [])[0] for _ in range(200)} == {"v2"}


@given(st.ip_addresses(v=4).map(str))
def test_split_sticky_ip_is_stable(ip):
    """sticky by address: the same address always gets the same pool, whatever the rng."""
    split = Split([("v1", 50), ("v2", 50)], "ip")
    first = split.choose(random.Random(1).random, ip, [])
    assert all(split.choose(random.Random(seed).random, ip, []) == first for seed in range(5))


def test_split_sticky_ip_spreads():
    """...and addresses spread over both pools roughly by weight."""
    split = Split([("v1", 50), ("v2", 50)], "ip")
    picks = [split.choose(None, "10.0.%d.%d" % (i // 250, i % 250), [])[0] for i in range(2000)]
    assert 0.4 < picks.count("v2") / 2000 < 0.6


def test_split_sticky_cookie():
    """A cookie naming a pool keeps the client; none (or a stale one) draws and sets it."""
    split = Split([("v1", 50), ("v2", 50)], "cookie:arm")
    assert split.choose(lambda: 0.99, "", [(b"cookie", b"arm=v1")]) == ("v1", None)
    pool, cookie = split.choose(lambda: 0.99, "", [(b"cookie", b"arm=gone")])
    assert pool == "v2"
    assert cookie == b"arm=v2; Path=/; HttpOnly; SameSite=Lax"


# --- header edits -----------------------------------------------------------------------------
def test_header_ops_order_and_templates():
    """remove, then set (replaces every line), then add (keeps existing lines)."""
    ops = HeaderOps(set_fields=[("X-A", compile_template("{client_ip}"))],
                    add_fields=[("x-b", compile_template("two"))], remove=["x-c"])
    headers = [(b"x-a", b"old"), (b"x-a", b"older"), (b"x-b", b"one"), (b"x-c", b"gone")]
    out = ops.apply(headers, TemplateValues(client_ip=b"10.0.0.1"))
    assert out == [(b"x-b", b"one"), (b"x-a", b"10.0.0.1"), (b"x-b", b"two")]


def test_header_ops_skip_a_value_that_would_split_the_head():
    """A rendered CR/LF drops that field instead of writing it."""
    ops = HeaderOps(set_fields=[("x-h", compile_template("{host}"))])
    assert ops.apply([], TemplateValues(host=b"a\r\nx: y")) == []


def test_security_preset_never_overrides_backend():
    """Preset fields are added only when absent; HSTS only on https."""
    headers = [(b"x-frame-options", b"DENY")]
    add_security_headers(headers, https=False)
    assert dict(headers)[b"x-frame-options"] == b"DENY"
    assert dict(headers)[b"x-content-type-options"] == b"nosniff"
    assert b"strict-transport-security" not in dict(headers)
    https = []
    add_security_headers(https, https=True)
    assert dict(https)[b"strict-transport-security"] == b"max-age=31536000"


# --- error pages ------------------------------------------------------------------------------
@pytest.mark.parametrize("accept, expected", [
    (None, False),
    (b"application/json", True),
    (b"text/html, application/json", False),  # tie: HTML
    (b"text/html;q=0.5, application/problem+json", True),
    (b"*/*", False),
    (b"application/json;q=0, */*", False),
    (b"application/json;q=bad", False),
])
def test_wants_json(accept, expected):
    assert wants_json(accept) is expected


def test_error_page_lookup_and_fill(tmp_path):
    """Exact status before class, route before server; tokens filled, escaped per format."""
    (tmp_path / "5xx.html").write_bytes(b"<b>{status} {reason}</b> {request_id} {other}")
    (tmp_path / "502.json").write_bytes(b'{"id": "{request_id}"}')
    server = ErrorPages(load_pages([("5xx", (str(tmp_path / "5xx.html"),))]))
    route = ErrorPages(load_pages([("502", (str(tmp_path / "502.json"),))]), server)
    assert route.render(503, b"Service Unavailable", b"<id>", None) == (
        b"text/html; charset=utf-8", b"<b>503 Service Unavailable</b> &lt;id&gt; {other}")
    content_type, body = route.render(502, b"Bad Gateway", b'a"b', b"application/json")
    assert json.loads(body) == {"id": 'a"b'}
    assert route.render(404, b"Not Found", b"x", b"text/html") is None  # usual short text
    assert json.loads(route.render(404, b"Not Found", b"x", b"application/json")[1]) == {
        "status": 404, "error": "Not Found", "request_id": "x"}


def test_missing_page_file_is_reported(tmp_path):
    with pytest.raises(PageError) as info:
        load_pages([("404", (str(tmp_path / "nope.html"),))])
    assert info.value.key == "error_pages.404"
    assert "cannot read it" in info.value.reason
