"""The ``Cache-Status`` response field (RFC 9211): one list member describing our cache.

A member is ``name; param; param=value`` in Structured Field syntax (RFC 8941 §3.1.2): booleans
as bare keys (``hit``, ``stored``, ``collapsed``), ``fwd`` a token, ``fwd-status``/``ttl``
integers, ``key``/``detail`` strings (``detail`` a token when it is one). The separator is
``"; "`` as in RFC 9211's own examples (both forms parse). Bytes outside printable ASCII, which
sf-strings cannot carry, are written ``%XX``.
"""

from __future__ import annotations

import math
import re
from typing import Optional

FWD_REASONS = frozenset(
    ["bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale", "partial"])

_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*\Z")
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]")
_INTEGER_MAX = 999999999999999  # sf-integer: at most 15 digits


def cache_status(name: str = "revproxy", *, hit: bool = False, fwd: Optional[str] = None,
                 fwd_status: Optional[int] = None, ttl: Optional[float] = None,
                 stored: bool = False, collapsed: bool = False, key: Optional[str] = None,
                 detail: Optional[str] = None) -> bytes:
    """One Cache-Status member, e.g. ``b"revproxy; hit; ttl=42"`` or
    ``b"revproxy; fwd=uri-miss; fwd-status=200; stored"``. ``ttl`` is floored to whole
    seconds (negative when stale). Raises ``ValueError`` for an unknown ``fwd``."""
    parts = [_item(name)]
    if hit:
        parts.append("hit")
    if fwd is not None:
        if fwd not in FWD_REASONS:
            raise ValueError("unknown Cache-Status fwd %r" % (fwd,))
        parts.append("fwd=" + fwd)
    if fwd_status is not None:
        parts.append("fwd-status=%d" % _integer(fwd_status))
    if ttl is not None:
        parts.append("ttl=%d" % _integer(ttl))
    if stored:
        parts.append("stored")
    if collapsed:
        parts.append("collapsed")
    if key is not None:
        parts.append("key=" + _string(key))
    if detail is not None:
        parts.append("detail=" + _item(detail))
    return "; ".join(parts).encode("ascii")


def _item(value) -> str:
    """A token when the text is one, else a string."""
    if isinstance(value, str) and _SF_TOKEN.match(value):
        return value
    return _string(value)


def _string(value) -> str:
    """An sf-string of ``value`` (str as UTF-8, or bytes), unprintable bytes as ``%XX``."""
    raw = bytes(value) if isinstance(value, (bytes, bytearray)) else value.encode("utf-8")
    raw = _UNPRINTABLE.sub(lambda m: b"%%%02X" % m.group()[0], raw)
    text = raw.decode("ascii")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _integer(value: float) -> int:
    if value != value:  # NaN: no meaningful number of seconds
        return 0
    return int(math.floor(max(-_INTEGER_MAX, min(_INTEGER_MAX, value))))
