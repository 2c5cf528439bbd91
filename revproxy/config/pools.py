"""``[pools.NAME]``: upstream pools, their members and balancing settings.

A pool table also holds ``[pools.NAME.health]`` (active probes, on when the table is present)
and ``[pools.NAME.outlier]`` (passive ejection).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from revproxy.config.errors import NO_VALUE
from revproxy.config.model import HealthCheck, Outlier, Pool
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
    text,
)
from revproxy.config.routing_keys import compile_regex, method
from revproxy.config.sections import header_name
from revproxy.config.values import (
    MEMBER_EXPECTED,
    format_duration,
    parse_fraction,
    parse_host_header,
    parse_member_url,
    parse_name,
    parse_policy_name,
    parse_probe_path,
    parse_retry_condition,
    parse_server_name,
    parse_status_range,
    parse_token,
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
