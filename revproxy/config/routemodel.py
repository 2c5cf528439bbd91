"""Frozen objects of one ``[[routes]]`` entry: the ``Route`` and its parts (header and
value matchers, header edits, a fixed answer). Built only while a config is read
(``revproxy.config.routes``, ``routing_keys``, ``load``); part of the ``Config`` snapshot of
``revproxy.config.model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class HeaderMatch:
    name: str  # lower-cased
    value: Optional[str] = None  # exact value (None = header present)
    regex: Optional[str] = None  # or a regex searched in the value


@dataclass(frozen=True)
class ValueMatch:
    """A query-parameter or cookie condition of a route (``query`` / ``cookies`` tables):
    present (both None), equal to ``value``, or ``regex`` found in it."""

    name: str
    value: Optional[str] = None
    regex: Optional[str] = None


@dataclass(frozen=True)
class HeaderEdits:
    """``request_headers`` / ``response_headers`` of a route; values are templates."""

    set: Tuple[Tuple[str, str], ...] = ()
    add: Tuple[Tuple[str, str], ...] = ()
    remove: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Respond:
    """``respond``: a fixed answer without a backend."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Route:
    name: str
    pool: str
    hosts: Tuple[str, ...] = ()  # exact ("example.com") or wildcard ("*.example.com"); () = any
    path_prefix: Optional[str] = None
    path_regex: Optional[str] = None
    methods: Tuple[str, ...] = ()  # () = any
    headers: Tuple[HeaderMatch, ...] = ()
    host_header: str = ""  # "" = preserve the client's Host; else send this Host upstream
    buffering: bool = True  # False: stream the response with back-pressure (no spool)
    cache: bool = True  # the [cache] applies to this route (when a store is configured)
    cache_ttl: Optional[float] = None  # freshness for storable responses that state none
    cache_key_host: bool = True  # False: one cache entry for every host this route serves
    cache_key_query: Optional[str] = None  # None = [cache] key_query
    cache_key_headers: Optional[Tuple[str, ...]] = None  # None = [cache] key_headers
    cache_key_cookies: Optional[Tuple[str, ...]] = None  # None = [cache] key_cookies
    # responses with Set-Cookie: "refuse" (not stored unless public/s-maxage), "strip" (stored,
    # the Set-Cookie never served from the cache), "keep" (stored and served with it: risky)
    cache_set_cookie: str = "refuse"
    https_redirect: bool = False  # plain-HTTP requests get 308 to https://host/target
    https_port: int = 0  # port in that redirect; 0 = none (443)
    hsts: str = ""  # Strict-Transport-Security value sent over HTTPS only; "" = none
    # -- matchers, splitting, rewriting, answers, headers, error pages (docs/routing.md) --
    query: Tuple[ValueMatch, ...] = ()  # query-parameter conditions
    cookies: Tuple[ValueMatch, ...] = ()  # cookie conditions
    split: Tuple[Tuple[str, int], ...] = ()  # (pool, weight): replaces `pool` per request
    split_sticky: str = ""  # "" = per request, "ip", or "cookie:NAME"
    strip_prefix: Optional[str] = None
    add_prefix: Optional[str] = None
    set_path: Optional[str] = None  # a template
    rewrite: Optional[Tuple[str, str]] = None  # (regex, replacement template)
    forward_query: str = "keep"  # "keep", "drop" or a template
    rewrite_location: bool = False  # Location / Content-Location rewritten back
    redirect: Optional[Tuple[int, str]] = None  # (status, URL template)
    respond: Optional[Respond] = None
    request_headers: Optional[HeaderEdits] = None
    response_headers: Optional[HeaderEdits] = None
    security_headers: bool = False
    error_pages: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()  # ("404"|"5xx", files)
    compress: bool = False  # compress responses per [compression] (docs/routing.md)
    compress_types: Optional[Tuple[str, ...]] = None  # None = [compression] types
    compress_min_size: Optional[int] = None  # None = [compression] min_size
    compress_level: Optional[int] = None  # gzip level; None = [compression] level
    mirror: str = ""  # "" = off; else a pool receiving a copy of each request (answer dropped)
    mirror_percent: float = 100.0  # share of the requests copied
    mirror_max_body: int = 64 * 1024  # larger request bodies are not copied
    mirror_max_in_flight: int = 16  # copies awaiting their answer; beyond: dropped
