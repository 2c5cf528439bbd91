"""The ``[[rate_limits]]`` array and the ``[rate_limits_shared]`` table.

Every bad value raises ``ConfigError`` naming the file, ``[[rate_limits]] #N <key>`` (or
``[rate_limits_shared] <key>``) and what was expected.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence, Tuple

from revproxy.config.model import Cache, RateLimit, RateLimits, RateLimitsShared
from revproxy.config.routemodel import Route
from revproxy.config.reader import (
    Table, boolean, count, duration, list_of, one_of, text,
)
from revproxy.config.values import parse_name, parse_size, parse_token

LIMIT_KEYS = ("name", "key", "rate", "burst", "unit", "routes", "action", "delay_queue",
              "max_delay", "shared", "max_keys")
SHARED_KEYS = ("servers", "timeout", "retry_interval", "key_prefix", "connections_per_server")
UNITS = ("requests", "bytes")
ACTIONS = ("reject", "delay", "detect")
RATE_EXPECTED = ('expected "<number>/s", "/m" or "/h" greater than 0, e.g. "10/s" or "600/m" '
                 '(with unit = "bytes" the number may carry k, m or g: "1m/s")')
KEY_EXPECTED = 'expected "ip", "route", "header:<name>" or "cookie:<name>"'
SERVER_EXPECTED = 'expected "host:port"'
PREFIX_EXPECTED = "expected 0-64 letters, digits, '_', '-', '.' or ':'"
_RATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*/\s*([smh])\s*\Z")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:\-]{0,64}\Z")
MAX_KEYS_LIMIT = 10_000_000


def parse_rate(value: Any) -> float:
    """``"10/s"``, ``"600/m"``, ``"1m/s"`` (size suffixes, for byte limits) -> per second."""
    if isinstance(value, str):
        found = _RATE_RE.match(value)
        if found:
            number = float(found.group(1))
            if found.group(2):
                number = parse_size("1" + found.group(2)) * number
            per_second = number / _PER[found.group(3)]
            if per_second > 0 and math.isfinite(per_second):
                return per_second
    raise ValueError(RATE_EXPECTED)


def parse_key_part(value: Any) -> str:
    """One part of a limit's key, canonical (header and cookie names as written, the header
    name lower-cased)."""
    if isinstance(value, str):
        if value in ("ip", "route"):
            return value
        kind, sep, name = value.partition(":")
        if sep and kind in ("header", "cookie"):
            try:
                parse_token(name)
            except ValueError:
                raise ValueError(KEY_EXPECTED + "; %r is not a valid name" % name) from None
            return kind + ":" + (name.lower() if kind == "header" else name)
    raise ValueError(KEY_EXPECTED)


def _burst(value: Any) -> float:
    try:
        result = parse_size(value)
    except ValueError:
        result = 0
    if result < 1:
        raise ValueError("expected a whole number >= 1 (requests; a size like \"64k\" for bytes)")
    return float(result)


def _server(value: Any) -> str:
    if isinstance(value, str):
        host, _, port = value.strip().rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536 and " " not in host:
            return value.strip()
    raise ValueError(SERVER_EXPECTED)


def _prefix(value: Any) -> str:
    if isinstance(value, str) and _PREFIX_RE.match(value):
        return value
    raise ValueError(PREFIX_EXPECTED)


def parse_rate_limits(root: Table, routes: Sequence[Route], cache: Cache) -> RateLimits:
    """Both sections; ``routes`` are the parsed routes (a limit naming another is refused),
    ``cache`` the parsed ``[cache]`` (its memcached servers serve shared limits when
    ``[rate_limits_shared] servers`` is absent)."""
    shared = _parse_shared(root, cache)
    raw: Any = root.data.get("rate_limits", [])
    if not isinstance(raw, list):
        raise root.error("rate_limits", raw,
                         'expected an array of tables: [[rate_limits]] name = "..."')
    route_names = [route.name for route in routes]
    limits = []
    for index, item in enumerate(raw):
        label = "[[rate_limits]] #%d" % (index + 1)
        if not isinstance(item, dict):
            raise root.error("rate_limits #%d" % (index + 1), item, "expected a table")
        limit = _parse_limit(Table(item, root.source, label), route_names)
        if any(other.name == limit.name for other in limits):
            raise root.error("%s name" % label, limit.name, "expected a name used only once")
        if limit.shared and not shared.servers:
            raise root.error("%s shared" % label, True,
                             "needs memcached servers: [rate_limits_shared] servers, or a "
                             '[cache] store = "memcached" with its servers')
        limits.append(limit)
    return RateLimits(limits=tuple(limits), shared=shared)


def _parse_limit(table: Table, route_names: Sequence[str]) -> RateLimit:
    table.check_keys(LIMIT_KEYS)
    name = table.require("name", parse_name, "a name for the log and the status page")
    rate = table.require("rate", parse_rate, RATE_EXPECTED)
    unit = table.get("unit", one_of(UNITS), "requests")
    burst = table.get("burst", _burst, float(max(1, math.ceil(rate))))
    key = table.get("key", list_of(parse_key_part, min_items=1, single=True, unique=True),
                    ("ip",))
    routes = table.get("routes", list_of(text(allow_empty=False), unique=True), ())
    for index, route in enumerate(routes):
        if route not in route_names:
            raise table.error("routes #%d" % (index + 1), route,
                              "expected the name of a route: " + (", ".join(route_names)
                                                                  or "(none defined)"))
    action = table.get("action", one_of(ACTIONS), "reject")
    shared = table.get("shared", boolean, False)
    if shared and action == "delay":
        raise table.error("action", action, 'expected "reject" or "detect" with shared = true '
                          "(shared counters are windowed: there is no queue to delay in)")
    if unit == "bytes" and action == "delay":
        raise table.error("action", action, 'expected "reject" or "detect" with unit = "bytes" '
                          "(bytes are charged after the response: there is nothing to wait for)")
    return RateLimit(
        name=name, key=key, rate=rate, burst=burst, unit=unit, routes=routes, action=action,
        delay_queue=table.get("delay_queue", count(0, 100000), 10),
        max_delay=table.get("max_delay", duration, 2.0),
        shared=shared,
        max_keys=table.get("max_keys", count(1, MAX_KEYS_LIMIT), 100000),
    )


def _parse_shared(root: Table, cache: Cache) -> RateLimitsShared:
    table = root.sub_table("rate_limits_shared", "[rate_limits_shared]")
    settings = table.build(RateLimitsShared, {
        "servers": list_of(_server, unique=True, single=True),
        "timeout": duration,
        "retry_interval": duration,
        "key_prefix": _prefix,
        "connections_per_server": count(1, 64),
    })
    if not settings.servers and cache.store == "memcached":
        servers = dict(cache.store_options).get("servers", ())
        if isinstance(servers, str):
            servers = servers.split(",")
        kept: Tuple[str, ...] = tuple(s.strip() for s in servers if isinstance(s, str))
        settings = RateLimitsShared(servers=kept, timeout=settings.timeout,
                                    retry_interval=settings.retry_interval,
                                    key_prefix=settings.key_prefix,
                                    connections_per_server=settings.connections_per_server)
    return settings
