"""Reading and checking the memcached store's options: readable ValueErrors, nothing else."""

from __future__ import annotations

import re

from revproxy.cache.stores.options import size_option
from revproxy.config.values import DURATION_EXPECTED, parse_duration

STORE = "memcached"
SERVERS_EXPECTED = 'expected "host:port[,host:port...]" or a list of "host:port" strings'
PREFIX_EXPECTED = "expected 0-64 letters, digits, '_', '-', '.' or ':'"
_PREFIX_RE = re.compile(rb"[A-Za-z0-9_.:\-]{0,64}\Z")
MAX_CONNECTIONS = 64
MIN_ITEM = 1024


def _error(key, value, expected):
    return ValueError("cache store %r: option %r: %s, not %r" % (STORE, key, expected, value))


def parse_server(text) -> tuple:
    """``"host:port"`` (IPv6 as ``[::1]:11211``) as ``(host, port)``; ValueError if not."""
    if not isinstance(text, str):
        raise ValueError(SERVERS_EXPECTED)
    host, _, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or " " in host:
        raise ValueError(SERVERS_EXPECTED)
    return host, int(port)


def servers_option(options) -> list:
    """``servers`` (required): a comma-separated string or a list of "host:port" strings."""
    value = options.get("servers")
    items = value.split(",") if isinstance(value, str) else value
    try:
        if not isinstance(items, list) or not items:
            raise ValueError(SERVERS_EXPECTED)
        servers = [parse_server(item) for item in items]
    except ValueError:
        raise _error("servers", value, SERVERS_EXPECTED)
    if len(set(servers)) != len(servers):
        raise _error("servers", value, "expected each server once")
    return servers


def connections_option(options, default: int) -> int:
    value = options.get("connections_per_server", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CONNECTIONS:
        raise _error("connections_per_server", value,
                     "expected a whole number from 1 to %d" % MAX_CONNECTIONS)
    return value


def timeout_option(options, default: float) -> float:
    value = options.get("timeout", default)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise _error("timeout", value, DURATION_EXPECTED)
    if not seconds > 0:
        raise _error("timeout", value, "expected a duration > 0")
    return seconds


def prefix_option(options, default: bytes) -> bytes:
    value = options.get("key_prefix", default)
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes) or not _PREFIX_RE.match(value):
        raise _error("key_prefix", value, PREFIX_EXPECTED)
    return value


def sizes_option(options, item_default: int, object_default: int) -> tuple:
    """``(item_max, max_object)``; item_max at least ``MIN_ITEM``."""
    item_max = size_option(STORE, options, "item_max", item_default)
    if item_max < MIN_ITEM:
        raise _error("item_max", options.get("item_max"), "expected a size >= %d" % MIN_ITEM)
    return item_max, size_option(STORE, options, "max_object", object_default)


def check_settings(servers, connections, timeout, item_max, max_object, key_prefix) -> None:
    """ValueError unless the constructor's arguments are usable (same rules as the options)."""
    options = {"connections_per_server": connections, "timeout": timeout,
               "item_max": item_max, "max_object": max_object, "key_prefix": key_prefix}
    if not servers:
        raise _error("servers", servers, SERVERS_EXPECTED)
    connections_option(options, None)
    timeout_option(options, None)
    sizes_option(options, None, None)
    prefix_option(options, None)
