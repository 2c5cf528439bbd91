"""Validation: conditional requests to the origin (RFC 9111 §4.3.1), 304 updates (§3.2,
§4.3.4), clients' conditionals answered from a stored response (RFC 9110 §13.2.2, RFC 9111
§4.3.2) and invalidation after unsafe methods (§4.4).

Choices where the RFCs leave latitude:

* A stored ``ETag`` is sent back verbatim (trimmed) in ``If-None-Match``: §4.3.1 says the
  cache MUST send the entity tags it was given; a malformed one simply will not match.
* ``Last-Modified`` is treated as a weak validator when selecting stored responses for a 304
  (RFC 9110 §8.8.2.2 makes it strong only under conditions we do not track).
* Updating from a 304 replaces every field of the same name except ``Content-Length`` (§3.2),
  hop-by-hop fields and those named in the 304's ``Connection`` (§3.1), the proxy
  authentication fields (§3.1) and ``Content-Range`` (§3.2 lets caches skip it). The body is
  stored as received (never decoded), so ``Content-Encoding``/``Content-Type`` are updated.
* ``client_conditional`` evaluates only GET and HEAD (the requests a stored response can
  answer, §4.3.2); ``If-Range``/``Range`` are not handled (no partial content).
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple
from urllib.parse import urljoin, urlsplit

from revproxy.cache.dates import parse_http_date
from revproxy.cache.directives import first_field, get_field

Headers = Sequence[Tuple[bytes, bytes]]

_ENTITY_TAG = re.compile(rb'(W/)?"([^"]*)"')
_NOT_UPDATED = frozenset([
    b"content-length", b"content-range",
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade",
    b"proxy-authenticate", b"proxy-authentication-info", b"proxy-authorization",
])
# Methods known to be safe (RFC 9110 §9.2.1, and the IANA method registry's "safe" column:
# WebDAV's PROPFIND and REPORT, SEARCH). Every other method, extension methods such as
# M-SEARCH included, is unsafe and invalidates on success (RFC 9111 §4.4).
SAFE_METHODS = frozenset([b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PROPFIND", b"REPORT",
                          b"SEARCH"])
# The request fields that make a request conditional (RFC 9110 §13.1): a client's are answered
# from a stored response; while revalidating, the cache sends its own instead.
CONDITIONAL_FIELDS = frozenset([b"if-none-match", b"if-modified-since", b"if-match",
                                b"if-unmodified-since", b"if-range"])
_DEFAULT_PORTS = {"http": 80, "https": 443}


def revalidation_headers(stored_headers: Headers,
                         other_variants: Sequence[Headers] = ()) -> List[Tuple[bytes, bytes]]:
    """Conditional fields validating ``stored_headers`` (§4.3.1): ``If-None-Match`` with its
    ETag (and those of ``other_variants``, other stored responses for the same URI), and
    ``If-Modified-Since`` with its Last-Modified when a single response is validated."""
    tags = []
    for headers in (stored_headers,) + tuple(other_variants):
        etag = first_field(headers, b"etag")
        if etag is not None and etag.strip(b" \t") and etag.strip(b" \t") not in tags:
            tags.append(etag.strip(b" \t"))
    out = []
    if tags:
        out.append((b"if-none-match", b", ".join(tags)))
    last_modified = first_field(stored_headers, b"last-modified")
    if not other_variants and last_modified is not None \
            and parse_http_date(last_modified) is not None:
        out.append((b"if-modified-since", last_modified.strip(b" \t")))
    return out


def update_stored_headers(stored_headers: Headers,
                          not_modified_headers: Headers) -> List[Tuple[bytes, bytes]]:
    """The stored fields with those of a 304 (or HEAD) response replacing same-named ones
    (§3.2), in the stored order; new names are appended."""
    skip = set(_NOT_UPDATED)
    for value in get_field(not_modified_headers, b"connection"):
        skip.update(t.strip(b" \t").lower() for t in value.split(b","))
    fresh: dict = {}
    for name, value in not_modified_headers:
        if name not in skip:
            fresh.setdefault(name, []).append((name, value))
    out: List[Tuple[bytes, bytes]] = []
    placed = set()
    for name, value in stored_headers:
        if name not in fresh:
            out.append((name, value))
        elif name not in placed:
            out.extend(fresh[name])
            placed.add(name)
    for name, lines in fresh.items():
        if name not in placed:
            out.extend(lines)
    return out


def parse_entity_tags(value: bytes) -> List[Tuple[bool, bytes]]:
    """``(weak, opaque-tag)`` for each entity tag in a field value (``[]`` for none)."""
    return [(bool(weak), tag) for weak, tag in _ENTITY_TAG.findall(value)]


def _stored_etag(headers: Headers) -> Optional[Tuple[bool, bytes]]:
    etag = first_field(headers, b"etag")
    if etag is None:
        return None
    match = _ENTITY_TAG.fullmatch(etag.strip(b" \t"))
    return None if match is None else (bool(match.group(1)), match.group(2))


def select_for_update(stored_list: Sequence[Headers], not_modified_headers: Headers) -> List[int]:
    """Indices of the stored responses (oldest first) a 304 applies to (§4.3.4): every one
    sharing a strong ETag of the 304; else the newest one matching its weak validator (ETag
    by weak comparison, else Last-Modified); else, when neither the 304 nor the single stored
    response has a validator, that one."""
    etag = _stored_etag(not_modified_headers)
    if etag is not None and not etag[0]:
        return [i for i, headers in enumerate(stored_list) if _stored_etag(headers) == etag]
    last_modified = parse_http_date(first_field(not_modified_headers, b"last-modified"))
    if etag is not None or last_modified is not None:
        for index in range(len(stored_list) - 1, -1, -1):
            if _weak_match(stored_list[index], etag, last_modified):
                return [index]
        return []
    if len(stored_list) == 1 and not _has_validator(stored_list[0]):
        return [0]
    return []


def _weak_match(headers: Headers, etag: Optional[Tuple[bool, bytes]],
                last_modified: Optional[float]) -> bool:
    if etag is not None:
        stored = _stored_etag(headers)
        return stored is not None and stored[1] == etag[1]
    return parse_http_date(first_field(headers, b"last-modified")) == last_modified


def _has_validator(headers: Headers) -> bool:
    return first_field(headers, b"etag") is not None or \
        first_field(headers, b"last-modified") is not None


def client_conditional(request_headers: Headers, stored_headers: Headers, method: bytes,
                       response_time: Optional[float] = None) -> Optional[int]:
    """304 or 412 when the client's preconditions decide the answer from the stored response
    (RFC 9110 §13.2.2 order), ``None`` when the stored response should be sent as is.
    ``If-Modified-Since`` is compared with Last-Modified, else Date, else ``response_time``
    (RFC 9111 §4.3.2)."""
    if method not in (b"GET", b"HEAD"):
        return None
    etag = _stored_etag(stored_headers)
    if_match = get_field(request_headers, b"if-match")
    if if_match:
        if not _matches(if_match, etag, strong=True):
            return 412
    else:
        since = _single_date(get_field(request_headers, b"if-unmodified-since"))
        modified = parse_http_date(first_field(stored_headers, b"last-modified"))
        if since is not None and modified is not None and modified > since:
            return 412
    if_none_match = get_field(request_headers, b"if-none-match")
    if if_none_match:
        return 304 if _matches(if_none_match, etag, strong=False) else None
    since = _single_date(get_field(request_headers, b"if-modified-since"))
    if since is None:
        return None
    modified = _modification_time(stored_headers, response_time)
    return 304 if modified is not None and modified <= since else None


def _matches(values: List[bytes], etag: Optional[Tuple[bool, bytes]], strong: bool) -> bool:
    """An If-Match / If-None-Match list against the stored tag (``*``: any response)."""
    joined = b",".join(values)
    if joined.strip(b" \t") == b"*":
        return True
    if etag is None or (strong and etag[0]):
        return False
    for weak, tag in parse_entity_tags(joined):
        if tag == etag[1] and not (strong and weak):
            return True
    return False


def _single_date(values: List[bytes]) -> Optional[float]:
    # More than one line is "more than one member": ignored (RFC 9110 §13.1.3, §13.1.4).
    return parse_http_date(values[0]) if len(values) == 1 else None


def _modification_time(headers: Headers, response_time: Optional[float]) -> Optional[float]:
    for name in (b"last-modified", b"date"):
        when = parse_http_date(first_field(headers, name))
        if when is not None:
            return when
    return response_time


def invalidation_targets(method: bytes, status: int, effective_uri: bytes,
                         response_headers: Headers) -> List[bytes]:
    """URIs whose stored responses an unsafe request invalidates (§4.4): the target URI, plus
    ``Location`` and ``Content-Location`` resolved against it when of the same origin; ``[]``
    for safe methods and error statuses."""
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    targets = [effective_uri]
    origin = _origin(effective_uri.decode("latin-1"))
    for name in (b"location", b"content-location"):
        value = first_field(response_headers, name)
        if value is None or not value.strip(b" \t") or origin is None:
            continue
        try:
            resolved = urljoin(effective_uri.decode("latin-1"),
                               value.strip(b" \t").decode("latin-1"))
        except ValueError:
            continue
        resolved = resolved.split("#", 1)[0]
        if _origin(resolved) == origin:
            uri = resolved.encode("latin-1")
            if uri not in targets:
                targets.append(uri)
    return targets


def _origin(uri: str) -> Optional[Tuple[str, str, int]]:
    try:
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not scheme or not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port
