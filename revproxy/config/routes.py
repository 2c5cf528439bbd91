"""``[pools.NAME]`` and ``[[routes]]``: upstream pools, routes and their cross-references."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Tuple

from revproxy.config.errors import NO_VALUE
from revproxy.config.model import HeaderMatch, Pool, Route
from revproxy.config.reader import Parser, Table, boolean, count, duration, list_of, text
from revproxy.config.sections import header_name
from revproxy.config.values import (
    parse_host_header,
    parse_host_pattern,
    parse_member_url,
    parse_name,
    parse_token,
)

HEADERS_EXPECTED = (
    'expected an array of inline tables {name = "...", value = "..."} '
    'or {name = "...", regex = "..."}'
)

MEMBERS_MISSING = 'expected an array of upstream URLs, e.g. members = ["http://10.0.0.5:8080"]'

POOL_FIELDS: Dict[str, Parser] = {
    "members": list_of(parse_member_url, min_items=1),
    "max_idle_per_member": count(0),
    "idle_timeout": duration,
    "connect_timeout": duration,
    "first_byte_timeout": duration,
    "read_timeout": duration,
    "resolve_interval": duration,
}


def compile_regex(value: Any) -> str:
    """A regular expression that compiles (Python ``re`` syntax); returned as text."""
    if not isinstance(value, str):
        raise ValueError("expected a regular expression (a string)")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError("expected a valid regular expression: %s" % exc) from None
    return value


def path_prefix(value: Any) -> str:
    """A path prefix: starts with "/", no query, fragment or whitespace."""
    ok = isinstance(value, str) and value.startswith("/")
    if not ok or any(char in value for char in "?# \t\r\n"):
        raise ValueError('expected a path starting with "/" (no query, fragment or spaces)')
    return value


def method(value: Any) -> str:
    """An HTTP method token, upper-cased."""
    return parse_token(value).upper()


ROUTE_FIELDS: Dict[str, Parser] = {
    "name": parse_name,
    "pool": text(allow_empty=False),
    "hosts": list_of(parse_host_pattern, single=True),
    "path_prefix": path_prefix,
    "path_regex": compile_regex,
    "methods": list_of(method),
    "host_header": parse_host_header,
    "buffering": boolean,
}


def _table_key(name: str) -> str:
    """``name`` as written in a TOML table header (quoted unless it is a bare key)."""
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else json.dumps(name)


def parse_pools(root: Table) -> Tuple[Pool, ...]:
    """Every ``[pools.NAME]``; at least one is required."""
    pools = root.data.get("pools", {})
    if not isinstance(pools, dict):
        raise root.error("pools", pools, "expected tables [pools.NAME]")
    if not pools:
        raise root.error(
            "[pools]", NO_VALUE,
            'at least one pool is required: add [pools.NAME] with members = ["http://host:port"]',
        )
    result = []
    for name, body in pools.items():
        label = "[pools.%s]" % _table_key(name)
        try:
            parse_name(name)
        except ValueError as exc:
            raise root.error(label, NO_VALUE, "bad pool name: %s" % exc) from None
        if not isinstance(body, dict):
            raise root.error(label[1:-1], body, "expected a table [pools.NAME]")
        table = Table(body, root.source, label)
        table.require("members", POOL_FIELDS["members"], MEMBERS_MISSING)
        result.append(table.build(Pool, POOL_FIELDS, extra={"name": name}))
    return tuple(result)


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


def _parse_route(table: Table, number: int) -> Route:
    table.require("pool", ROUTE_FIELDS["pool"], "expected the name of a [pools.NAME] table")
    extra = {"name": "route-%d" % number, "headers": _parse_headers(table)}
    return table.build(Route, ROUTE_FIELDS, extra=extra, also_known=("headers",))


def _check_references(route: Route, table: Table, pools: Tuple[Pool, ...]) -> None:
    names = [pool.name for pool in pools]
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
