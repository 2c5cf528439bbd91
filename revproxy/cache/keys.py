"""Cache keys: what identifies a stored response (before ``Vary`` adds its secondary part).

A key starts with the effective URI, ``http://host/path?query``, so purging by URL prefix
is a prefix match on keys. The host is lower-cased without the default port; the path is the
normalised one (the same one routing used); the query is kept as sent, sorted, or ignored
per ``[cache] key_query``. Configured request headers and cookies are appended after a NUL,
which no URI contains.
"""

from __future__ import annotations

from revproxy.balancing.facts import find_cookie


def effective_host(host: bytes, scheme: bytes = b"http") -> bytes:
    host = host.lower()
    default = b":80" if scheme == b"http" else b":443"
    if host.endswith(default):
        host = host[: -len(default)]
    return host


def _query(query, mode: str) -> bytes:
    if query is None or mode == "ignore":
        return b""
    raw = query.encode("latin-1")
    if mode == "sorted":
        raw = b"&".join(sorted(part for part in raw.split(b"&") if part))
    return b"?" + raw


def effective_uri(scheme: bytes, host: bytes, path: str, query) -> bytes:
    """The request's effective URI (RFC 9110 §7.1), with the normalised path."""
    return b"%s://%s%s%s" % (scheme, effective_host(host, scheme), path.encode("latin-1"),
                             b"" if query is None else b"?" + query.encode("latin-1"))


class KeySettings:
    """What goes into a key: ``[cache]``'s key settings with a route's overrides."""

    __slots__ = ("key_host", "key_query", "key_headers", "key_cookies")

    def __init__(self, cache, route=None):
        pick = (lambda mine, default: default if mine is None else mine)
        self.key_host = route.cache_key_host if route is not None else True
        self.key_query = pick(getattr(route, "cache_key_query", None), cache.key_query)
        self.key_headers = pick(getattr(route, "cache_key_headers", None), cache.key_headers)
        self.key_cookies = pick(getattr(route, "cache_key_cookies", None), cache.key_cookies)


def primary_key(scheme: bytes, host: bytes, path: str, query, settings, headers) -> bytes:
    """The key of a request under the ``[cache]`` settings (see the module docstring).
    With ``key_host`` False (a route's ``cache_key_host = false``) the host is ``*``."""
    host = effective_host(host, scheme) if getattr(settings, "key_host", True) else b"*"
    key = b"%s://%s%s%s" % (scheme, host, path.encode("latin-1"),
                            _query(query, settings.key_query))
    extra = []
    for name in settings.key_headers:
        wanted = name.encode("ascii")
        values = [value for field, value in headers if field == wanted]
        extra.append(b"h:%s=%s" % (wanted, b",".join(values)))
    for name in settings.key_cookies:
        value = find_cookie(headers, name.encode("ascii"))
        extra.append(b"c:%s=%s" % (name.encode("ascii"), value if value is not None else b"-"))
    if extra:
        key += b"\x00" + b"\x00".join(extra)
    return key
