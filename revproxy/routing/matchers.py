"""Query-parameter and cookie conditions of a route (pure).

A ``ValueMatch`` (config) names a parameter or cookie and what it must be: ``present`` (any
value, even empty), an exact ``value``, or a ``regex`` (``re.search``). Query parameters are
split on ``&``, names and values percent-decoded (``+`` is a space, as forms send it); a
repeated parameter holds when one of its values does. Cookies are read from every ``Cookie``
field (``name=value`` pairs split on ``;``, a quoted value unquoted); the first cookie of a
name counts, as servers read them.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Sequence, Tuple
from urllib.parse import unquote_plus


class ValueCheck:
    """One compiled condition on a named value."""

    __slots__ = ("name", "value", "regex")

    def __init__(self, name: str, value: Optional[str] = None, regex: Optional[str] = None):
        self.name = name
        self.value = value
        self.regex = None if regex is None else re.compile(regex)

    def holds(self, found: Iterable[str]) -> bool:
        """True when one of the ``found`` values (of this name) satisfies the condition."""
        for value in found:
            if self.value is not None and value != self.value:
                continue
            if self.regex is not None and self.regex.search(value) is None:
                continue
            return True
        return False


def query_values(query: Optional[str], name: str):
    """Every (decoded) value of parameter ``name`` in the raw ``query``."""
    if not query:
        return
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if unquote_plus(key) == name:
            yield unquote_plus(value)


def cookie_value(headers: Sequence[Tuple[bytes, bytes]], name: str) -> Optional[str]:
    """The value of the first cookie called ``name`` in the ``Cookie`` fields, or None."""
    wanted = name.encode("latin-1")
    for key, line in headers:
        if key != b"cookie":
            continue
        for pair in line.split(b";"):
            cookie, eq, value = pair.strip().partition(b"=")
            if eq and cookie == wanted:
                value = value.strip()
                if len(value) >= 2 and value[:1] == b'"' == value[-1:]:
                    value = value[1:-1]
                return value.decode("latin-1")
    return None


def query_holds(checks: Sequence[ValueCheck], query: Optional[str]) -> bool:
    return all(check.holds(query_values(query, check.name)) for check in checks)


def cookies_hold(checks: Sequence[ValueCheck], headers) -> bool:
    for check in checks:
        value = cookie_value(headers, check.name)
        if value is None or not check.holds((value,)):
            return False
    return True
