"""Config of the per-route stages: what loads, and located messages for what does not."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from revproxy.config.errors import ConfigError
from revproxy.config.load import parse_config
from revproxy.config.routemodel import HeaderEdits, Respond, ValueMatch
from revproxy.routing.errorpages import build_error_pages

POOLS = '[pools.app]\nmembers = ["http://127.0.0.1:9000"]\n[pools.v2]\nmembers = ["http://127.0.0.1:9001"]\n'
SOURCE = "conf/x.toml"


def parse(route_text: str, extra: str = ""):
    return parse_config(tomllib.loads(POOLS + extra + "[[routes]]\n" + route_text), SOURCE)


def error_of(route_text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(route_text)
    return str(info.value)


def test_everything_loads():
    """Every key of the routing issue, as documented, loads into the model."""
    route = parse(
        'pool = "app"\nstrip_prefix = "/api"\nadd_prefix = "/v1"\nrewrite_location = true\n'
        'forward_query = "v=2&{query}"\nsecurity_headers = true\n'
        'query = { beta = "1", debug = true, v = { regex = "^2" } }\n'
        'cookies = { canary = true }\n'
        'split = [{ pool = "app", weight = 95 }, { pool = "v2", weight = 5 }]\n'
        'split_sticky = "cookie:arm"\n'
        'request_headers = { set = { "X-A" = "{request_id}" }, remove = ["x-b"] }\n'
        'response_headers = { add = { "x-m" = "{member}" } }\n'
    ).routes[0]
    assert route.query == (ValueMatch("beta", "1"), ValueMatch("debug"),
                           ValueMatch("v", regex="^2"))
    assert route.cookies == (ValueMatch("canary"),)
    assert route.split == (("app", 95), ("v2", 5))
    assert route.request_headers == HeaderEdits(set=(("x-a", "{request_id}"),), remove=("x-b",))
    assert route.response_headers == HeaderEdits(add=(("x-m", "{member}"),))
    assert route.forward_query == "v=2&{query}"


def test_answer_routes_need_no_pool():
    """redirect / respond routes may omit pool; a split route takes its first pool."""
    routes = parse('redirect = { status = 308, to = "https://{host}{uri}" }\n'
                   '[[routes]]\npath_prefix = "/healthz"\nrespond = { body = "ok" }\n'
                   '[[routes]]\nsplit = [{ pool = "app", weight = 1 }, { pool = "v2", weight = 1 }]\n'
                   ).routes
    assert routes[0].redirect == (308, "https://{host}{uri}")
    assert routes[1].respond == Respond(200, "ok")
    assert routes[2].pool == "app"


@pytest.mark.parametrize("text, fragment", [
    ('pool = "app"\nstrip_prefix = "api"', '[[routes]] #1 strip_prefix = "api": expected a path'),
    ('pool = "app"\nrewrite = { regex = "(", replace = "/x" }', "rewrite.regex"),
    ('pool = "app"\nrewrite = { regex = "^/(a)", replace = "/$2" }',
     "uses capture $2 but the regex has 1 group"),
    ('pool = "app"\nrewrite = { regex = "^/", replace = "/x?y" }', "rewrite.replace"),
    ('pool = "app"\nset_path = "/{nope}"', "unknown name"),
    ('redirect = { status = 200, to = "/" }', "redirect.status = 200: expected one of: 301"),
    ('redirect = { to = "/{member}" }', "not available here"),
    ('respond = { status = 99 }', "respond.status"),
    ('pool = "app"\nrequest_headers = { set = { "x-a" = "{member}" } }',
     "request_headers.set.x-a"),
    ('pool = "app"\nrequest_headers = { set = { "bad name" = "1" } }', "request_headers.set"),
    ('pool = "app"\nsplit = [{ pool = "app", weight = 1 }, { pool = "nope", weight = 1 }]',
     "split #2"),
    ('pool = "app"\nsplit = [{ pool = "app", weight = 1 }]', "at least two pools"),
    ('pool = "app"\nsplit_sticky = "ip"', "expected a split to stick to"),
    ('pool = "app"\nquery = { a = 1 }', "query.a = 1"),
    ('pool = "app"\nset_path = "/a"\nstrip_prefix = "/b"', "expected one of set_path"),
    ('redirect = { to = "/" }\nrespond = { body = "x" }', "either redirect or respond"),
    ('pool = "app"\nerror_pages = { 200 = "x.html" }', "error_pages.200"),
    ('pool = "app"\nforward_query = "a#b"', "forward_query"),
])
def test_bad_routing_keys_are_located(text, fragment):
    """Each bad value names the file, the route and the key, with what was expected."""
    message = error_of(text)
    assert message.startswith(SOURCE + ": ")
    assert fragment in message


def test_missing_error_page_file_fails_the_snapshot(tmp_path):
    """A page file that cannot be read fails start-up / reload with file and key."""
    config = parse('pool = "app"\nerror_pages = { "5xx" = "%s" }\n' % (tmp_path / "no.html"))
    with pytest.raises(ConfigError) as info:
        build_error_pages(config)
    assert "[[routes]] #1 error_pages.5xx" in str(info.value)
    assert "cannot read it" in str(info.value)


def test_no_pages_configured_costs_nothing():
    """Without error_pages anywhere, nothing is built (the proxy's answers are unchanged)."""
    assert build_error_pages(parse('pool = "app"\n')) is None


def test_query_or_cookie_route_is_not_a_catch_all():
    """--upstream points the last catch-all route at pool "cli": a route with only a query
    or cookie condition is not one (a "cli" route is appended instead)."""
    from revproxy.config.load import apply_overrides

    for condition in ('query = { beta = "1" }', "cookies = { canary = true }"):
        config = apply_overrides(parse('pool = "app"\n%s\n' % condition), (),
                                 ("http://127.0.0.1:9002",))
        assert config.routes[0].pool == "app"
        assert config.routes[-1].name == "cli"


def test_upstream_flag_replaces_a_catch_all_split():
    """--upstream on a catch-all split route sends it all to "cli" (the split is dropped)."""
    from revproxy.config.load import apply_overrides

    config = apply_overrides(
        parse('split = [{ pool = "app", weight = 1 }, { pool = "v2", weight = 1 }]\n'), (),
        ("http://127.0.0.1:9002",))
    assert (config.routes[0].pool, config.routes[0].split) == ("cli", ())
