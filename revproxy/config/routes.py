"""``[[routes]]``: each route's keys checked, its defaults, and its references to pools.

The matching, splitting, rewriting and answer keys are parsed by ``routing_keys``; a config
without routes and with a single pool gets one catch-all route.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from revproxy.config.errors import NO_VALUE
from revproxy.config.model import Pool
from revproxy.config.routemodel import HeaderMatch, Route
from revproxy.config.reader import (
    Parser,
    Table,
    boolean,
    count,
    duration,
    list_of,
    one_of,
    size,
    text,
)
from revproxy.config import routing_keys
from revproxy.config.routing_keys import compile_regex, method, path_prefix
from revproxy.config.sections import header_name, media_pattern
from revproxy.config.values import (
    parse_host_header,
    parse_host_pattern,
    parse_name,
    parse_token,
)
from revproxy.config.transport import parse_hsts

HEADERS_EXPECTED = (
    'expected an array of inline tables {name = "...", value = "..."} '
    'or {name = "...", regex = "..."}'
)

ROUTE_FIELDS: Dict[str, Parser] = {
    "name": parse_name,
    "pool": text(allow_empty=False),
    "hosts": list_of(parse_host_pattern, single=True),
    "path_prefix": path_prefix,
    "path_regex": compile_regex,
    "methods": list_of(method),
    "host_header": parse_host_header,
    "buffering": boolean,
    "cache": boolean,
    "cache_ttl": duration,
    "cache_key_host": boolean,
    "cache_key_query": one_of(("keep", "sorted", "ignore")),
    "cache_key_headers": list_of(lambda v: parse_token(v).lower()),
    "cache_key_cookies": list_of(parse_token),
    "cache_set_cookie": one_of(("refuse", "strip", "keep")),
    "https_redirect": boolean,
    "https_port": count(0, 65535),
    "hsts": parse_hsts,
    "split_sticky": routing_keys.split_sticky,
    "strip_prefix": routing_keys.prefix,
    "add_prefix": routing_keys.prefix,
    "set_path": lambda value: routing_keys.path_template(value).text,
    "forward_query": routing_keys.forward_query,
    "rewrite_location": boolean,
    "security_headers": boolean,
    "compress": boolean,
    "compress_types": list_of(media_pattern),
    "compress_min_size": size(0),
    "compress_level": count(1, 9),
    "mirror": text(allow_empty=False),
    "mirror_percent": lambda value: _percent(value),
    "mirror_max_body": size(0),
    "mirror_max_in_flight": count(1),
}
MIRROR_KEYS = ("mirror_percent", "mirror_max_body", "mirror_max_in_flight")


def _percent(value: Any) -> float:
    """A share from 0 to 100 (percent)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100:
        return float(value)
    raise ValueError("expected a percentage from 0 to 100")

# Keys of the routing issue read by _routing_extra (tables with their own shapes).
ROUTE_TABLES = ("headers", "query", "cookies", "split", "rewrite", "redirect", "respond",
                "request_headers", "response_headers", "error_pages")


def _parse_header_match(table: Table, index: int, item: Any) -> HeaderMatch:
    key = "headers #%d" % (index + 1)
    if not isinstance(item, dict):
        raise table.error(key, item, HEADERS_EXPECTED)
    sub = Table(item, table.source, table.where(key))
    sub.check_keys(("name", "value", "regex"))
    name = sub.require("name", header_name, "expected the header field name")
    value = sub.get("value", text())
    regex = sub.get("regex", compile_regex)
    if value is not None and regex is not None:
        raise sub.error("regex", regex, "expected either value or regex, not both")
    return HeaderMatch(name=name, value=value, regex=regex)


def _parse_headers(table: Table) -> Tuple[HeaderMatch, ...]:
    raw = table.data.get("headers", [])
    if not isinstance(raw, list):
        raise table.error("headers", raw, HEADERS_EXPECTED)
    return tuple(_parse_header_match(table, index, item) for index, item in enumerate(raw))


def _routing_extra(table: Table) -> Dict[str, Any]:
    """The route's matchers, split, rewriting, answers, headers and error pages."""
    split = routing_keys.parse_split(table)
    extra: Dict[str, Any] = {
        "query": routing_keys.parse_value_matches(table, "query"),
        "cookies": routing_keys.parse_value_matches(table, "cookies"),
        "split": split,
        "rewrite": routing_keys.parse_rewrite(table),
        "redirect": routing_keys.parse_redirect(table),
        "respond": routing_keys.parse_respond(table),
        "request_headers": routing_keys.parse_header_edits(table, "request_headers"),
        "response_headers": routing_keys.parse_header_edits(table, "response_headers"),
        "error_pages": routing_keys.parse_error_pages(table),
    }
    if extra["redirect"] is not None and extra["respond"] is not None:
        raise table.error("respond", table.data["respond"], "expected either redirect or respond")
    if split and "pool" not in table.data:
        extra["pool"] = split[0][0]
    if "split_sticky" in table.data and not split:
        raise table.error("split_sticky", table.data["split_sticky"], "expected a split to stick to")
    rewrites = [key for key in ("set_path", "rewrite", "strip_prefix") if key in table.data]
    if len(rewrites) > 1:
        raise table.error(rewrites[1], table.data[rewrites[1]],
                          "expected one of set_path, rewrite, strip_prefix (not %s too)"
                          % rewrites[0])
    return extra


def _parse_route(table: Table, number: int) -> Route:
    answers = "redirect" in table.data or "respond" in table.data
    if not answers and "split" not in table.data:
        table.require("pool", ROUTE_FIELDS["pool"], "expected the name of a [pools.NAME] table")
    extra = {"name": "route-%d" % number, "headers": _parse_headers(table)}
    extra.update(_routing_extra(table))
    if "pool" not in table.data and "pool" not in extra:
        extra["pool"] = ""  # answered without a backend
    return table.build(Route, ROUTE_FIELDS, extra=extra, also_known=ROUTE_TABLES)


def _check_references(route: Route, table: Table, pools: Tuple[Pool, ...]) -> None:
    names = [pool.name for pool in pools]
    for index, (pool, _) in enumerate(route.split):
        if pool not in names:
            raise table.error("split #%d" % (index + 1), pool,
                              "expected the name of a defined pool: " + ", ".join(names))
    if route.mirror and route.mirror not in names:
        raise table.error("mirror", route.mirror,
                          "expected the name of a defined pool: " + ", ".join(names))
    for key in MIRROR_KEYS:
        if key in table.data and not route.mirror:
            raise table.error(key, table.data[key], 'expected mirror = "POOL" beside it')
    if route.pool == "" and (route.redirect is not None or route.respond is not None):
        return
    if route.pool not in names:
        raise table.error(
            "pool", route.pool, "expected the name of a defined pool: " + ", ".join(names)
        )


def parse_routes(root: Table, pools: Tuple[Pool, ...]) -> Tuple[Route, ...]:
    """Every ``[[routes]]`` in order; none and a single pool -> one catch-all "default"."""
    raw = root.data.get("routes", [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise root.error("routes", raw, "expected an array of tables [[routes]]")
    if not raw:
        if len(pools) == 1:
            return (Route(name="default", pool=pools[0].name),)
        raise root.error(
            "[[routes]]", NO_VALUE,
            "at least one route is required when several pools are defined (%s)"
            % ", ".join(pool.name for pool in pools),
        )
    routes: List[Route] = []
    seen: Dict[str, int] = {}
    for index, body in enumerate(raw):
        table = Table(body, root.source, "[[routes]] #%d" % (index + 1))
        route = _parse_route(table, index + 1)
        if route.name in seen:
            raise table.error(
                "name", route.name,
                "expected a unique route name; [[routes]] #%d already uses it" % seen[route.name],
            )
        seen[route.name] = index + 1
        _check_references(route, table, pools)
        routes.append(route)
    return tuple(routes)
