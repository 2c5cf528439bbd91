"""``[pools.NAME]`` and ``[[routes]]``: upstream pools, routes and their cross-references.

A pool table also holds its balancing settings, ``[pools.NAME.health]`` (active probes, on
when the table is present) and ``[pools.NAME.outlier]`` (passive ejection).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from revproxy.config.errors import NO_VALUE
from revproxy.config.model import HeaderMatch, HealthCheck, Outlier, Pool, Route
from revproxy.config.reader import (
    plain_options,
    table_key,
    Parser,
    Table,
    boolean,
    count,
    duration,
    duration_or_off,
    empty_or,
    list_of,
    one_of,
    size,
    text,
)
from revproxy.config import routing_keys
from revproxy.config.sections import header_name, media_pattern
from revproxy.config.values import (
    MEMBER_EXPECTED,
    format_duration,
    parse_fraction,
    parse_host_header,
    parse_host_pattern,
    parse_member_url,
    parse_name,
    parse_policy_name,
    parse_probe_path,
    parse_retry_condition,
    parse_server_name,
    parse_status_range,
    parse_token,
)
from revproxy.config.transport import parse_hsts

HEADERS_EXPECTED = (
    'expected an array of inline tables {name = "...", value = "..."} '
    'or {name = "...", regex = "..."}'
)

MEMBERS_MISSING = 'expected an array of upstream URLs, e.g. members = ["http://10.0.0.5:8080"]'
MEMBER_OR_TABLE = MEMBER_EXPECTED + ', or an inline table {url = "http://host:port", weight = N}'
MAX_WEIGHT = 1000
OPTIONS_EXPECTED = "expected an inline table of the policy's options, e.g. { default_rtt = 0.005 }"

# Read by _parse_pool itself rather than through POOL_FIELDS.
POOL_TABLES = ("members", "balance_options", "health", "outlier")

POOL_FIELDS: Dict[str, Parser] = {
    "max_idle_per_member": count(0),
    "idle_timeout": duration,
    "connect_timeout": duration,
    "first_byte_timeout": duration,
    "read_timeout": duration,
    "resolve_interval": duration,
    "balance": parse_policy_name,
    "sticky_cookie": empty_or(parse_token, "a cookie name (an HTTP token)"),
    "load_header": empty_or(header_name, "a response header name (an HTTP token)"),
    "agent_port": count(0, 65535),
    "agent_interval": duration,
    "slow_start": duration_or_off,
    "max_connections_per_member": count(0),
    "queue_size": count(0),
    "queue_timeout": duration,
    "retries": count(0, 10),
    "retry_on": list_of(parse_retry_condition, unique=True),
    "retry_budget": parse_fraction,
    "panic_threshold": parse_fraction,
    "tls_verify": boolean,
    "tls_ca": text(),
    "tls_server_name": parse_server_name,
    "tls_client_cert": text(),
    "tls_client_key": text(),
    "tls_min_version": one_of(("1.2", "1.3")),
    "send_proxy_protocol": empty_or(one_of(("v1", "v2")),
                                    '"v1" or "v2" (the PROXY protocol version sent to members)'),
}


def _pool_keys() -> Tuple[str, ...]:
    """Every key of a pool table, in the order the unknown-key message lists them."""
    keys = ["members"] + list(POOL_FIELDS) + ["health", "outlier"]
    keys.insert(keys.index("balance") + 1, "balance_options")
    return tuple(keys)


POOL_KEYS = _pool_keys()

OUTLIER_FIELDS: Dict[str, Parser] = {
    "consecutive_failures": count(0),
    "base_ejection": duration,
    "max_ejection": duration,
    "max_ejected_percent": count(0, 100),
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


HEALTH_FIELDS: Dict[str, Parser] = {
    "path": parse_probe_path,
    "method": method,
    "host": parse_host_header,
    "expect_status": list_of(parse_status_range, min_items=1, single=True),
    "expect_body": compile_regex,
    "interval": duration,
    "timeout": duration,
    "rise": count(1),
    "fall": count(1),
}

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


def _parse_member(table: Table, key: str, item: Any) -> Tuple[str, int]:
    """(normalised URL, weight) of one ``members`` entry: a URL or {url, weight}."""
    if isinstance(item, dict):
        sub = Table(item, table.source, table.where(key))
        sub.check_keys(("url", "weight"))
        url = sub.require("url", parse_member_url, MEMBER_EXPECTED)
        return url, sub.get("weight", count(1, MAX_WEIGHT), 1)
    try:
        return parse_member_url(item), 1
    except ValueError as exc:
        message = str(exc) if isinstance(item, str) else MEMBER_OR_TABLE
        raise table.error(key, item, message) from None


def _parse_members(table: Table) -> Tuple[Tuple[str, ...], Tuple[int, ...]]:
    """(members, weights); weights is () when every member weighs 1 (the model's default)."""
    if "members" not in table.data:
        raise table.error("members", NO_VALUE, "missing; " + MEMBERS_MISSING)
    raw = table.data["members"]
    if not isinstance(raw, list):
        raise table.error("members", raw, MEMBERS_MISSING)
    if not raw:
        raise table.error("members", raw, "expected a non-empty array")
    members: List[str] = []
    weights: List[int] = []
    for index, item in enumerate(raw):
        key = "members #%d" % (index + 1)
        url, weight = _parse_member(table, key, item)
        if url in members:
            raise table.error(
                key, item, "expected each member once; members #%d is the same server (%s)"
                % (members.index(url) + 1, url),
            )
        members.append(url)
        weights.append(weight)
    if all(weight == 1 for weight in weights):
        return tuple(members), ()
    return tuple(members), tuple(weights)


def _parse_balance_options(table: Table) -> Tuple[Tuple[str, Any], ...]:
    """The policy's options as (key, value) pairs sorted by key; each policy checks its own."""
    return plain_options(table, "balance_options", OPTIONS_EXPECTED)


def _default_note(table: Table, key: str) -> str:
    return "" if key in table.data else ", the default"


def _check_probe_timeout(table: Table, health: HealthCheck) -> None:
    """A probe must end before the next one is due: timeout < interval. The message blames
    the key the file set (timeout when both are set)."""
    if health.timeout < health.interval:
        return
    if "timeout" in table.data:
        raise table.error("timeout", table.data["timeout"], "expected less than interval (%s%s)"
                          % (format_duration(health.interval), _default_note(table, "interval")))
    raise table.error("interval", table.data["interval"], "expected more than timeout (%s%s)"
                      % (format_duration(health.timeout), _default_note(table, "timeout")))


def _check_ejection_range(table: Table, outlier: Outlier) -> None:
    """base_ejection <= max_ejection, blaming the key the file set (max when both are)."""
    if outlier.base_ejection <= outlier.max_ejection:
        return
    if "max_ejection" in table.data:
        raise table.error(
            "max_ejection", table.data["max_ejection"], "expected at least base_ejection (%s%s)"
            % (format_duration(outlier.base_ejection), _default_note(table, "base_ejection")))
    raise table.error(
        "base_ejection", table.data["base_ejection"], "expected at most max_ejection (%s%s)"
        % (format_duration(outlier.max_ejection), _default_note(table, "max_ejection")))


def _parse_health(table: Table, name: str) -> Optional[HealthCheck]:
    """``[pools.NAME.health]``, or None when the table is absent (no active probes)."""
    if "health" not in table.data:
        return None
    sub = table.sub_table("health", "[pools.%s.health]" % table_key(name))
    health = sub.build(HealthCheck, HEALTH_FIELDS)
    _check_probe_timeout(sub, health)
    if health.expect_body is not None and health.method == "HEAD":
        raise sub.error("expect_body", health.expect_body,
                        'expected no body check with method = "HEAD" (its response has no body)')
    return health


def _parse_outlier(table: Table, name: str) -> Outlier:
    """``[pools.NAME.outlier]``; absent: the model's defaults."""
    sub = table.sub_table("outlier", "[pools.%s.outlier]" % table_key(name))
    outlier = sub.build(Outlier, OUTLIER_FIELDS)
    _check_ejection_range(sub, outlier)
    return outlier


def _parse_pool(table: Table, name: str) -> Pool:
    table.check_keys(POOL_KEYS)
    members, weights = _parse_members(table)
    extra = {
        "name": name,
        "members": members,
        "weights": weights,
        "balance_options": _parse_balance_options(table),
        "health": _parse_health(table, name),
        "outlier": _parse_outlier(table, name),
    }
    pool = table.build(Pool, POOL_FIELDS, extra=extra, also_known=POOL_TABLES)
    _check_client_pair(table, pool)
    return pool


def _check_client_pair(table: Table, pool: Pool) -> None:
    """A client certificate needs its key and a key its certificate."""
    if pool.tls_client_cert and not pool.tls_client_key:
        raise table.error("tls_client_key", NO_VALUE,
                          "missing; expected the PEM private key of tls_client_cert")
    if pool.tls_client_key and not pool.tls_client_cert:
        raise table.error("tls_client_cert", NO_VALUE,
                          "missing; expected the PEM certificate of tls_client_key")


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
        label = "[pools.%s]" % table_key(name)
        try:
            parse_name(name)
        except ValueError as exc:
            raise root.error(label, NO_VALUE, "bad pool name: %s" % exc) from None
        if not isinstance(body, dict):
            raise root.error(label[1:-1], body, "expected a table [pools.NAME]")
        result.append(_parse_pool(Table(body, root.source, label), name))
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
