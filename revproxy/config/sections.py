"""The flat sections: ``[server]``, ``[limits]``, ``[buffering]``, ``[logging]``, ``[demo]``,
``[admin]``.

Each section is a table of key -> parser; a key left out keeps the model's default.
"""

from __future__ import annotations

import re
from typing import Any, Dict

from revproxy.config.model import (
    Admin, Buffering, Cache, Compression, Demo, Http2, Limits, Logging, Server,
)
from revproxy.config.reader import (
    Parser,
    Table,
    boolean,
    count,
    duration,
    duration_or_off,
    list_of,
    one_of,
    plain_options,
    size,
    text,
)
from revproxy.config.values import (
    check_endpoint,
    parse_fraction,
    parse_network,
    parse_policy_name,
    parse_token,
)

from revproxy.workers.count import parse_workers

ACCESS_FORMATS = ("combined", "json")


def upgrade_token(value: Any) -> str:
    """An Upgrade protocol token, lower-cased; h2c is refused (cleartext HTTP/2 smuggling)."""
    token = parse_token(value).lower()
    if token == "h2c":
        raise ValueError(
            "expected Upgrade tokens other than h2c: h2c is never tunnelled "
            "(it would bypass the proxy's request checks)"
        )
    return token


def header_name(value: Any) -> str:
    """A header field name, lower-cased (fields are compared lower-case everywhere)."""
    return parse_token(value).lower()


SERVER_FIELDS: Dict[str, Parser] = {
    "listen": list_of(check_endpoint, min_items=1),
    "proxy_name": parse_token,
    "trusted_proxies": list_of(parse_network),
    "allow_upgrade": list_of(upgrade_token),
    "allow_encoded_slash": boolean,
    "shutdown_timeout": duration,
    "request_id_header": header_name,
    "backlog": count(0, 65535),
    "proxy_protocol_from": list_of(parse_network),
    "workers": parse_workers,  # a count or "auto" (revproxy.workers.count)
}

LIMITS_FIELDS: Dict[str, Parser] = {
    "max_request_line": size(1),
    "max_header_bytes": size(1),
    "max_header_count": count(1),
    "max_body_size": size(0),
    "max_connections": count(1),
    "header_timeout": duration,
    "body_timeout": duration,
    "idle_timeout": duration,
    "send_timeout": duration,
    "max_pipeline_bytes": size(1),
    "tunnel_idle_timeout": duration,
    "tunnel_max_lifetime": duration_or_off,
    "min_request_rate": size(0),
    "min_response_rate": size(0),
    "min_rate_grace": duration,
    "max_connections_per_ip": count(0),
}

BUFFERING_FIELDS: Dict[str, Parser] = {
    "request_memory": size(0),
    "response_memory": size(0),
    "response_file_max": size(0),
    "total_memory": size(0),
    "total_disk": size(0),
    "temp_dir": text(),
}

LOGGING_FIELDS: Dict[str, Parser] = {
    "access_log": text(),
    "access_format": one_of(ACCESS_FORMATS),
    "error_log": text(allow_empty=False),
}

DEMO_FIELDS: Dict[str, Parser] = {
    "enabled": boolean,
    "ports": list_of(count(1, 65535), min_items=1),
}

class Secret(str):
    """A string whose repr hides it: the admin token never reaches a log line (the reload
    log describes changed keys with their repr)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<hidden>'"


def admin_token(value: Any) -> str:
    """A bearer token (RFC 6750 token68 characters), kept as a ``Secret``."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9\-._~+/]*=*", value):
        raise ValueError("expected a token of letters, digits and -._~+/ (Bearer token68)")
    return Secret(value)


ADMIN_FIELDS: Dict[str, Parser] = {
    "listen": list_of(check_endpoint),
    "debug_clients": list_of(parse_network),
    "debug_header": header_name,
    "token": admin_token,
    "token_file": text(),
}


def store_name(value: Any) -> str:
    """"" (no cache) or a store's name; whether the store exists is checked at start-up."""
    if value == "":
        return ""
    return parse_policy_name(value)


CACHE_FIELDS: Dict[str, Parser] = {
    "store": store_name,
    "max_object": size(0),
    "heuristic_fraction": parse_fraction,
    "heuristic_max": duration,
    "lock_timeout": duration,
    "stale_while_revalidate": duration_or_off,
    "stale_if_error": duration_or_off,
    "key_query": one_of(("keep", "sorted", "ignore")),
    "key_headers": list_of(header_name),
    "key_cookies": list_of(parse_token),
    "tag_headers": list_of(header_name),
    "targeted_fields": list_of(header_name),
    "strip_targeted_fields": list_of(header_name),
    "range_fill_max": size(0),
}


def parse_cache(root: Table) -> Cache:
    table = root.sub_table("cache", "[cache]")
    extra = {"store_options": plain_options(table, "store_options")}
    return table.build(Cache, CACHE_FIELDS, extra=extra, also_known=("store_options",))


def parse_server(root: Table) -> Server:
    from revproxy.config.routing_keys import parse_error_pages

    table = root.sub_table("server", "[server]")
    extra = {"error_pages": parse_error_pages(table)}
    server = table.build(Server, SERVER_FIELDS, extra=extra, also_known=("error_pages",))
    problem = proxy_protocol_problem(server.listen, server.proxy_protocol_from)
    if problem is not None:
        raise table.error(*problem)
    return server


def proxy_protocol_problem(listen, trusted):
    """None, or ``(key, value, expectation)``: a ``haproxy:`` listener needs
    ``proxy_protocol_from`` (a PROXY header believed from anyone would let any client
    choose its address)."""
    for description in listen:
        if description[:8].lower() == "haproxy:" and not trusted:
            return ("listen", description,
                    "a haproxy: listener needs [server] proxy_protocol_from = [CIDRs of the "
                    "load balancers allowed to send PROXY headers]")
    return None


def parse_limits(root: Table) -> Limits:
    return root.sub_table("limits", "[limits]").build(Limits, LIMITS_FIELDS)


def parse_buffering(root: Table) -> Buffering:
    return root.sub_table("buffering", "[buffering]").build(Buffering, BUFFERING_FIELDS)


def parse_logging(root: Table) -> Logging:
    return root.sub_table("logging", "[logging]").build(Logging, LOGGING_FIELDS)


def parse_demo(root: Table) -> Demo:
    return root.sub_table("demo", "[demo]").build(Demo, DEMO_FIELDS)


def parse_admin(root: Table) -> Admin:
    return root.sub_table("admin", "[admin]").build(Admin, ADMIN_FIELDS)


HTTP2_FIELDS: Dict[str, Parser] = {
    "enabled": boolean,
    "prior_knowledge": boolean,
    "max_concurrent_streams": count(1, 2 ** 31 - 1),
    "max_header_list_size": size(1024),
    "max_header_block_size": size(1024),
    "max_continuation_frames": count(0, 1000),
    "initial_window_size": count(1, 2 ** 31 - 1),
    "connection_window_size": count(65535, 2 ** 31 - 1),
    "max_resets_per_minute": count(1),
}


def parse_http2(root: Table) -> Http2:
    return root.sub_table("http2", "[http2]").build(Http2, HTTP2_FIELDS)


_MEDIA_PATTERN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+/(?:\*|[!#$%&'*+\-.^_`|~0-9a-z]+)\Z")
CODINGS = ("zstd", "br", "gzip")


def media_pattern(value: Any) -> str:
    """A media type "type/subtype" or "type/*", lower-cased."""
    if isinstance(value, str) and _MEDIA_PATTERN.match(value.strip().lower()):
        return value.strip().lower()
    raise ValueError('expected a media type such as "text/html" or "text/*"')


def coding_name(value: Any) -> str:
    if value not in CODINGS:
        raise ValueError("expected one of: " + ", ".join('"%s"' % c for c in CODINGS))
    return value


COMPRESSION_FIELDS: Dict[str, Parser] = {
    "codings": list_of(coding_name, min_items=1, unique=True),
    "types": list_of(media_pattern),
    "min_size": size(0),
    "level": count(1, 9),
    "brotli_level": count(0, 11),
    "zstd_level": count(1, 19),
}


def parse_compression(root: Table) -> Compression:
    return root.sub_table("compression", "[compression]").build(Compression, COMPRESSION_FIELDS)
