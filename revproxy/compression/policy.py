"""Which responses are compressed, and how their header fields change (pure).

``plan`` looks at one request and its backend response head and returns None (the response
goes on untouched) or a ``Plan``: the new header list and the coding (None: the response
depends on Accept-Encoding but this client gets identity, so only ``Vary`` is added).

Never transformed: 1xx, 204, 206, responses to a request with ``Range``, a response that
already has a ``Content-Encoding``, ``Cache-Control: no-transform`` (RFC 9110 §7.7), a type
outside the route's list or inside the always-refused list (images, audio, video, archives,
fonts that are compressed already), and a known length under ``min_size``. A 304 is only
brought in line with the stored variant it validates: when the conditional request named the
ETag weak (our compressed copy carries ``W/``), the 304's ETag is weakened and ``Vary`` added,
so that updating the stored copy (RFC 9111 §4.3.4) keeps it weak.

A compressed response loses ``Content-Length`` (the coded length is unknown until the end),
``Accept-Ranges`` (ranges of the origin are ranges of identity), the digests computed over
the uncoded bytes (``Content-Digest``, ``Repr-Digest``, ``Content-MD5``), and a strong ETag
becomes weak (RFC 9110 §8.8.3: a transformed representation may not keep a strong
validator; nginx does the same).
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from revproxy.compression.negotiate import choose

Headers = Sequence[Tuple[bytes, bytes]]

# Compressing these again costs CPU and gains nothing (or grows them): refused whatever the
# route's types say.
NEVER = frozenset([
    b"application/zip", b"application/gzip", b"application/x-gzip", b"application/zstd",
    b"application/x-bzip2", b"application/x-xz", b"application/x-7z-compressed",
    b"application/vnd.rar", b"application/x-rar-compressed", b"application/pdf",
    b"font/woff", b"font/woff2",
])
NEVER_MAJOR = (b"image/", b"audio/", b"video/")
NEVER_EXCEPT = frozenset([b"image/svg+xml", b"image/x-icon", b"image/vnd.microsoft.icon",
                          b"image/bmp"])
# A wildcard ("text/*") does not pull these in; naming them exactly does.
WILDCARD_EXCLUDED = frozenset([b"text/event-stream"])

DEFAULT_TYPES = (
    "text/*", "application/json", "application/javascript", "application/xml",
    "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
    "application/ld+json", "application/manifest+json", "application/wasm", "image/svg+xml",
)

_DROPPED = frozenset([b"content-length", b"accept-ranges", b"content-digest", b"repr-digest",
                      b"content-md5"])
_ENTITY_TAG = re.compile(rb'(W/)?"[^"]*"')


class RoutePolicy:
    """The compression settings of one route: codings in preference order (only those
    available here, as bytes), level per coding, type patterns, minimum size."""

    __slots__ = ("codings", "levels", "types", "min_size")

    def __init__(self, codings: Sequence[str], levels, types: Sequence[str], min_size: int):
        self.codings = tuple(c.encode("ascii") for c in codings)
        self.levels = dict(levels)
        self.types = frozenset(t.lower().encode("ascii") for t in types)
        self.min_size = min_size

    def type_allowed(self, content_type: Optional[bytes]) -> bool:
        if content_type is None:
            return False
        media = content_type.split(b";", 1)[0].strip(b" \t").lower()
        if media in NEVER or (media.startswith(NEVER_MAJOR) and media not in NEVER_EXCEPT):
            return False
        if media in self.types:
            return True
        major = media.split(b"/", 1)[0]
        return major + b"/*" in self.types and media not in WILDCARD_EXCLUDED


class Plan:
    """A response to transform: ``headers`` replace the backend's; ``coding`` is the content
    coding to apply (bytes), or None (identity: only ``Vary`` changed)."""

    __slots__ = ("coding", "headers")

    def __init__(self, coding: Optional[bytes], headers: List[Tuple[bytes, bytes]]):
        self.coding = coding
        self.headers = headers


def _values(headers: Headers, name: bytes) -> List[bytes]:
    return [value for key, value in headers if key == name]


def _first(headers: Headers, name: bytes) -> Optional[bytes]:
    for key, value in headers:
        if key == name:
            return value
    return None


def _no_transform(headers: Headers) -> bool:
    for value in _values(headers, b"cache-control"):
        for member in value.split(b","):
            if member.strip(b" \t").lower() == b"no-transform":
                return True
    return False


def varies_on_encoding(headers: Headers) -> bool:
    for value in _values(headers, b"vary"):
        for member in value.split(b","):
            if member.strip(b" \t").lower() in (b"accept-encoding", b"*"):
                return True
    return False


def with_vary(headers: Headers) -> List[Tuple[bytes, bytes]]:
    """``headers`` with ``Accept-Encoding`` in ``Vary`` (a new line unless already there)."""
    out = list(headers)
    if not varies_on_encoding(out):
        out.append((b"vary", b"Accept-Encoding"))
    return out


def weak(etag: bytes) -> bytes:
    """``"x"`` -> ``W/"x"``; a weak tag (or a malformed value) unchanged."""
    if etag.startswith(b'"'):
        return b"W/" + etag
    return etag


def plan(policy: RoutePolicy, request_headers: Headers, status: int, headers: Headers,
         length: Optional[int], validators: Sequence[bytes] = ()) -> Optional[Plan]:
    """How to transform one response (see the module docstring), or None to leave it.

    ``length`` is the backend's announced body length (None: unknown, compressed whatever
    its size). ``validators`` are the If-None-Match values the conditional request carried
    (the client's, or the cache's own when it revalidates); only a 304 reads them.
    """
    if status == 304:
        return _plan_304(policy, request_headers, headers, validators)
    if status < 200 or status in (204, 206):
        return None
    if _first(request_headers, b"range") is not None:
        return None
    if _first(headers, b"content-encoding") is not None or _no_transform(headers):
        return None
    if not policy.type_allowed(_first(headers, b"content-type")):
        return None
    if length is not None and length < policy.min_size:
        return None
    coding = choose(_values(request_headers, b"accept-encoding"), policy.codings)
    if coding is None:
        return Plan(None, with_vary(headers))
    out = []
    for key, value in headers:
        if key in _DROPPED:
            continue
        if key == b"etag":
            value = weak(value)
        out.append((key, value))
    out.append((b"content-encoding", coding))
    return Plan(coding, with_vary(out))


def _plan_304(policy, request_headers, headers, validators) -> Optional[Plan]:
    etag = _first(headers, b"etag")
    if etag is None or not etag.startswith(b'"') or _no_transform(headers):
        return None
    if choose(_values(request_headers, b"accept-encoding"), policy.codings) is None:
        return None
    wanted = b"W/" + etag
    if not any(tag == wanted for value in validators for tag in _tags(value)):
        return None
    out = [(k, weak(v) if k == b"etag" else v) for k, v in headers]
    return Plan(None, with_vary(out))


def _tags(value: bytes) -> List[bytes]:
    return [m.group(0) for m in _ENTITY_TAG.finditer(value)]


def policy_for(settings, route) -> RoutePolicy:
    """The ``RoutePolicy`` of ``route`` from ``[compression]`` (``settings``) and the route's
    ``compress_*`` overrides; codings not installed here are left out."""
    from revproxy.compression.encoders import usable

    levels = {"gzip": route.compress_level if route.compress_level is not None else settings.level,
              "br": settings.brotli_level, "zstd": settings.zstd_level}
    types = route.compress_types if route.compress_types is not None else settings.types
    min_size = route.compress_min_size if route.compress_min_size is not None \
        else settings.min_size
    return RoutePolicy(usable(settings.codings), levels, types, min_size)
