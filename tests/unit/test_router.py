"""Tests for revproxy.routing.router: first match in config order, indexed by host."""

from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.config.routemodel import HeaderMatch, Route
from revproxy.routing.router import Router, host_key

Headers = Sequence[Tuple[bytes, bytes]]


def route(name: str, **kwargs: object) -> Route:
    return Route(name=name, pool="p", **kwargs)  # type: ignore[arg-type]


def name_of(router: Router, host: bytes, path: str = "/", method: bytes = b"GET",
            headers: Headers = ()) -> Optional[str]:
    found = router.match(host, path, method, headers)
    return None if found is None else found.name


class TestHosts:
    def test_exact_host_is_case_insensitive_and_ignores_port(self) -> None:
        """'Example.COM:8080' matches the route for 'example.com'."""
        router = Router([route("r", hosts=("example.com",))])
        assert name_of(router, b"Example.COM:8080") == "r"
        assert name_of(router, b"example.com.") == "r"
        assert name_of(router, b"example.org") is None

    def test_ipv6_host_with_port(self) -> None:
        """'[::1]:80' matches a route for '::1' or '[::1]'."""
        router = Router([route("a", hosts=("::1",)), route("b", hosts=("[::2]",))])
        assert name_of(router, b"[::1]:80") == "a"
        assert name_of(router, b"[::2]") == "b"
        assert name_of(router, b"[::3]:80") is None

    def test_wildcard_matches_any_depth_but_not_the_bare_domain(self) -> None:
        """'*.example.com' matches a.example.com and a.b.example.com, not example.com."""
        router = Router([route("w", hosts=("*.example.com",))])
        assert name_of(router, b"a.example.com") == "w"
        assert name_of(router, b"A.B.Example.com:443") == "w"
        assert name_of(router, b"example.com") is None
        assert name_of(router, b"badexample.com") is None

    def test_route_without_hosts_matches_any_host(self) -> None:
        """A host-less route matches every Host, including an empty one."""
        router = Router([route("any")])
        assert name_of(router, b"whatever.test") == "any"
        assert name_of(router, b"") == "any"

    def test_config_order_wins_across_index_kinds(self) -> None:
        """Candidates from exact, wildcard and any-host lists are merged in config order."""
        routes = [
            route("any-api", path_prefix="/api/"),
            route("wild", hosts=("*.example.com",)),
            route("exact", hosts=("a.example.com",)),
            route("any"),
        ]
        router = Router(routes)
        assert name_of(router, b"a.example.com", "/api/x") == "any-api"
        assert name_of(router, b"a.example.com", "/x") == "wild"
        assert name_of(router, b"other.test", "/x") == "any"

    def test_host_key_forms(self) -> None:
        """host_key lower-cases and strips port, brackets and a final dot."""
        assert host_key("EXAMPLE.com:80") == "example.com"
        assert host_key("[::1]:8080") == "::1"
        assert host_key("::1") == "::1"
        assert host_key("example.com.") == "example.com"


class TestConditions:
    def test_path_prefix_is_a_plain_string_prefix(self) -> None:
        """'/api' matches '/apix' too; '/api/' only the segment."""
        router = Router([route("seg", path_prefix="/api/"), route("str", path_prefix="/api")])
        assert name_of(router, b"h", "/api/v1") == "seg"
        assert name_of(router, b"h", "/apix") == "str"
        assert name_of(router, b"h", "/ap") is None

    def test_path_regex_is_anchored_at_the_start(self) -> None:
        """path_regex uses re.match: 'v[0-9]' does not match '/x/v1'."""
        router = Router([route("re", path_regex=r"/v[0-9]+/")])
        assert name_of(router, b"h", "/v12/x") == "re"
        assert name_of(router, b"h", "/x/v1/") is None

    def test_methods_are_case_sensitive_against_upper_cased_config(self) -> None:
        """Config 'get' becomes GET; a request method 'get' is a different method."""
        router = Router([route("r", methods=("get", "POST"))])
        assert name_of(router, b"h", method=b"GET") == "r"
        assert name_of(router, b"h", method=b"POST") == "r"
        assert name_of(router, b"h", method=b"get") is None
        assert name_of(router, b"h", method=b"PUT") is None

    def test_header_present(self) -> None:
        """A HeaderMatch without value or regex requires the field to be present."""
        router = Router([route("r", headers=(HeaderMatch("x-canary"),))])
        assert name_of(router, b"h", headers=[(b"x-canary", b"")]) == "r"
        assert name_of(router, b"h", headers=[(b"x-other", b"1")]) is None

    def test_header_value_matches_any_repeated_line(self) -> None:
        """An exact value may be carried by any one of repeated field lines."""
        router = Router([route("r", headers=(HeaderMatch("x-v", value="2"),))])
        assert name_of(router, b"h", headers=[(b"x-v", b"1"), (b"x-v", b"2")]) == "r"
        assert name_of(router, b"h", headers=[(b"x-v", b"1, 2")]) is None

    def test_header_regex_is_searched(self) -> None:
        """A regex is searched (not anchored) in each field line."""
        router = Router([route("r", headers=(HeaderMatch("cookie", regex="beta=1"),))])
        assert name_of(router, b"h", headers=[(b"cookie", b"a=b; beta=1")]) == "r"
        assert name_of(router, b"h", headers=[(b"cookie", b"beta=0")]) is None

    def test_value_and_regex_together_need_one_line_satisfying_both(self) -> None:
        """With value and regex both set, a single field line must satisfy both."""
        router = Router([route("r", headers=(HeaderMatch("x", value="12", regex="^1"),))])
        assert name_of(router, b"h", headers=[(b"x", b"12")]) == "r"
        assert name_of(router, b"h", headers=[(b"x", b"2"), (b"x", b"1")]) is None

    def test_every_header_match_must_hold(self) -> None:
        """Several HeaderMatch entries are combined with AND."""
        matches = (HeaderMatch("a", value="1"), HeaderMatch("b"))
        router = Router([route("r", headers=matches)])
        assert name_of(router, b"h", headers=[(b"a", b"1"), (b"b", b"x")]) == "r"
        assert name_of(router, b"h", headers=[(b"a", b"1")]) is None

    def test_no_routes_means_none(self) -> None:
        """An empty router answers None (404) for everything."""
        assert Router([]).match(b"h", "/", b"GET", []) is None


# --- property: the index agrees with a naive scan -----------------------------------

def naive_match(routes: Sequence[Route], host: bytes, path: str, method: bytes,
                headers: Headers) -> Optional[Route]:
    """Reference: test every condition of every route, in order."""
    name = host.decode("latin-1").lower()
    if name.startswith("["):
        name = name[1: name.index("]")]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    name = name.rstrip(".")
    for candidate in routes:
        if candidate.hosts and not any(_host_ok(h, name) for h in candidate.hosts):
            continue
        if candidate.path_prefix is not None and not path.startswith(candidate.path_prefix):
            continue
        if candidate.path_regex is not None and not re.match(candidate.path_regex, path):
            continue
        if candidate.methods and method.decode() not in [m.upper() for m in candidate.methods]:
            continue
        if all(_header_ok(m, headers) for m in candidate.headers):
            return candidate
    return None


def _host_ok(pattern: str, name: str) -> bool:
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return pattern == name


def _header_ok(match: HeaderMatch, headers: Headers) -> bool:
    values = [v.decode() for n, v in headers if n.decode() == match.name]
    return any((match.value is None or v == match.value)
               and (match.regex is None or re.search(match.regex, v)) for v in values)


HOSTS = st.sampled_from(["a.example.com", "b.a.example.com", "example.com", "other.test",
                         "*.example.com", "*.a.example.com", "*.test", "::1"])
ROUTES = st.lists(
    st.builds(
        route,
        st.text("abcdefgh", min_size=1, max_size=3),
        hosts=st.lists(HOSTS, max_size=2).map(tuple),
        path_prefix=st.none() | st.sampled_from(["/", "/a", "/a/", "/b"]),
        path_regex=st.none() | st.sampled_from([r"/a", r"/[ab]/c", r".*c$"]),
        methods=st.lists(st.sampled_from(["GET", "post", "PUT"]), max_size=2).map(tuple),
        headers=st.lists(
            st.builds(HeaderMatch, st.sampled_from(["x", "y"]),
                      value=st.none() | st.sampled_from(["1", "2"]),
                      regex=st.none() | st.just("^1")),
            max_size=2).map(tuple),
    ),
    max_size=6,
)
REQUEST_HOSTS = st.sampled_from(
    [b"a.example.com", b"B.A.example.com:81", b"example.com", b"other.test", b"x.test.",
     b"[::1]:80", b"nothing"])
PATHS = st.sampled_from(["/", "/a", "/a/c", "/b/c", "/ab", "/c"])
HEADERS = st.lists(st.tuples(st.sampled_from([b"x", b"y", b"z"]),
                             st.sampled_from([b"1", b"2", b"12"])), max_size=3)


@settings(max_examples=200)
@given(ROUTES, st.lists(st.tuples(REQUEST_HOSTS, PATHS,
                                  st.sampled_from([b"GET", b"POST", b"PUT", b"get"]),
                                  HEADERS), min_size=1, max_size=4))
def test_index_agrees_with_naive_first_match(routes: list, requests: list) -> None:
    """For any routes and requests, Router.match returns what a linear scan returns."""
    router = Router(routes)
    for host, path, method, headers in requests:
        assert router.match(host, path, method, headers) is naive_match(
            routes, host, path, method, headers)
