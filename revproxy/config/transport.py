"""Per-route transport-security values: the ``hsts`` key (pure)."""

from __future__ import annotations

import re
from typing import Any

from revproxy.config.values import parse_duration

HSTS_EXPECTED = (
    'expected a Strict-Transport-Security value such as "max-age=63072000; includeSubDomains" '
    "(max-age required), or a table {max_age = \"730d\" or seconds, include_subdomains = bool, "
    "preload = bool}"
)
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_DIRECTIVE_RE = re.compile(r'^(%s)(?:=(%s|"[\x20-\x21\x23-\x7e]*"))?\Z' % (_TOKEN, _TOKEN))
_DAYS_RE = re.compile(r"^\s*([0-9]+)\s*d\s*\Z", re.IGNORECASE)


def _check_value(value: str) -> str:
    """A header value with a ``max-age=N`` directive and well-formed others (RFC 6797 §6.1)."""
    seen = set()
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        found = _DIRECTIVE_RE.match(part)
        if not found:
            raise ValueError(HSTS_EXPECTED)
        name = found.group(1).lower()
        if name in seen:  # §6.1: each directive at most once
            raise ValueError(HSTS_EXPECTED)
        seen.add(name)
        if name == "max-age" and not (found.group(2) or "").strip('"').isdigit():
            raise ValueError(HSTS_EXPECTED)
    if "max-age" not in seen:
        raise ValueError(HSTS_EXPECTED)
    return value.strip()


def _max_age(value: Any) -> int:
    if isinstance(value, str):
        days = _DAYS_RE.match(value)
        if days:
            return int(days.group(1)) * 86400
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(HSTS_EXPECTED)
    return int(seconds)


def parse_hsts(value: Any) -> str:
    """``hsts``: "" (off), a header value, or a table -> the header value to send."""
    if value == "":
        return ""
    if isinstance(value, str):
        return _check_value(value)
    if isinstance(value, dict):
        unknown = set(value) - {"max_age", "include_subdomains", "preload"}
        if unknown or "max_age" not in value:
            raise ValueError(HSTS_EXPECTED)
        try:
            text = "max-age=%d" % _max_age(value["max_age"])
        except ValueError:
            raise ValueError(HSTS_EXPECTED) from None
        for key, directive in (("include_subdomains", "includeSubDomains"), ("preload", "preload")):
            flag = value.get(key, False)
            if not isinstance(flag, bool):
                raise ValueError(HSTS_EXPECTED)
            if flag:
                text += "; " + directive
        return text
    raise ValueError(HSTS_EXPECTED)
