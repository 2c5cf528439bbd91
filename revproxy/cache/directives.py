"""Cache-Control parsing (RFC 9111 §5.2) and delta-seconds (§1.2.2).

``parse_cache_control`` turns every ``Cache-Control`` field line of a message into one
``CacheControl`` mapping: lower-cased directive name (``str``) -> unquoted argument (``str``)
or ``None`` when the directive has no argument.

Choices where the RFC leaves latitude:

* A directive that appears twice keeps its **first** occurrence (RFC 9111 §4.2.1 allows "the
  first occurrence" or "stale"; the first is what most caches do), except that a bare
  ``private`` or ``no-cache`` anywhere wins over a qualified one (the restrictive reading).
* Arguments may be a token or a quoted-string for every directive (§5.2: recipients "ought to
  accept both forms"), so ``max-age="60"`` is 60 seconds.
* A member that is not ``token [ "=" ( token / quoted-string ) ]`` (e.g. ``max-age =60``,
  ``max-age=60;x``) still counts as its leading directive name, but its argument is unusable:
  boolean directives (``no-store``, ``private``...) are honoured - the restrictive reading - and
  a delta-seconds directive reads as ``INVALID``, which the freshness code treats as stale
  (§4.2.1: "consider responses that have invalid freshness information ... to be stale").
* Empty list members (``a,,b``) are ignored (RFC 9110 §5.6.1).
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional, Sequence, Union

DELTA_SECONDS_MAX = 2 ** 31  # RFC 9111 §1.2.2: the value used on overflow
INVALID = -1  # ``CacheControl.seconds`` result for an unusable delta-seconds argument

_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
# One list member: runs of anything but comma/quote, or whole quoted strings (which may hold
# commas); an unterminated quote runs to the end of the line.
_MEMBER = re.compile(r'(?:[^,"]+|"(?:[^"\\]|\\.)*"?)+', re.S)
_ITEM = re.compile(
    r"[ \t]*([" + _TCHAR + r"]+)(?:=(?:([" + _TCHAR + r"]+)|\"((?:[^\"\\]|\\.)*)\"))?[ \t]*\Z",
    re.S,
)
_LEADING_NAME = re.compile(r"[ \t]*([" + _TCHAR + r"]*)")
_UNESCAPE = re.compile(r"\\(.)", re.S)
_DIGITS = re.compile(r"[0-9]+\Z")


class CacheControl(Dict[str, Optional[str]]):
    """Directive name -> argument; ``malformed`` names the directives whose member did not
    parse (present, but their argument is unusable)."""

    __slots__ = ("malformed",)

    def __init__(self) -> None:
        super().__init__()
        self.malformed: FrozenSet[str] = frozenset()

    def seconds(self, name: str) -> Optional[int]:
        """The delta-seconds argument of ``name``: ``None`` when the directive is absent,
        ``INVALID`` (-1) when it is present but not a valid delta-seconds, else 0..2**31."""
        if name not in self:
            return None
        if name in self.malformed:
            return INVALID
        value = delta_seconds(self[name])
        return INVALID if value is None else value


def qualified_fields(cc: "CacheControl", name: str) -> Optional[FrozenSet[bytes]]:
    """The field names a *qualified* ``no-cache="a, b"`` / ``private="a"`` lists (lower-case
    bytes), or None when ``name`` is absent or unqualified. A malformed member, or an argument
    that names no field, reads as unqualified: the restrictive reading (the whole response)."""
    if name not in cc or name in cc.malformed:
        return None
    value = cc[name]
    if value is None:
        return None
    fields = frozenset(part.strip(" \t").lower().encode("latin-1")
                       for part in value.split(",") if part.strip(" \t"))
    return fields or None


def unqualified(cc: "CacheControl", name: str) -> bool:
    """``name`` is present and applies to the whole response (no field list)."""
    return name in cc and qualified_fields(cc, name) is None


def delta_seconds(value: Union[str, bytes, None]) -> Optional[int]:
    """``1*DIGIT`` as an int capped at 2**31 (RFC 9111 §1.2.2); ``None`` for anything else
    (signs, decimals, spaces, empty, missing)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not _DIGITS.match(value):
        return None
    if len(value) > 10:  # more digits than 2**31 has: skip the big-int conversion
        return DELTA_SECONDS_MAX
    return min(int(value), DELTA_SECONDS_MAX)


_PARSED: dict = {}  # field lines -> CacheControl; a handful of values repeat endlessly
_PARSED_MAX = 1024


def parse_cache_control(values: Sequence[bytes]) -> CacheControl:
    """Parse the ``Cache-Control`` field lines ``values`` (in order); never raises.

    Results are memoised and shared: callers must treat them as read-only (every caller in
    revproxy does). A cache hit re-reads the stored response's Cache-Control on every
    request; parsing it once was 7% of the hit path in a profile."""
    key = tuple(values)
    result = _PARSED.get(key)
    if result is None:
        result = _parse(key)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = result
    return result


def _parse(values) -> CacheControl:
    result = CacheControl()
    malformed = set()
    for line in values:
        text = line.decode("latin-1") if isinstance(line, (bytes, bytearray)) else str(line)
        for member in _MEMBER.findall(text):
            _add_member(result, malformed, member)
    if malformed:
        result.malformed = frozenset(malformed)
    return result


# Qualified or not, these restrict: a bare occurrence after a qualified one must not be lost.
_WHOLE_WHEN_BARE = frozenset(["private", "no-cache"])


def _add_member(result: CacheControl, malformed: set, member: str) -> None:
    match = _ITEM.match(member)
    if match is not None:
        name = match.group(1).lower()
        token, quoted = match.group(2), match.group(3)
        if name in result:
            if name in _WHOLE_WHEN_BARE and token is None and quoted is None:
                result[name] = None  # a bare private / no-cache anywhere covers everything
            return
        if quoted is not None:
            result[name] = _UNESCAPE.sub(r"\1", quoted)
        else:
            result[name] = token
        return
    # Empty members and junk without a leading name (e.g. '="x"') carry nothing to honour.
    name = _LEADING_NAME.match(member).group(1).lower()
    if name and name not in result:
        result[name] = None
        malformed.add(name)


def get_field(headers: Sequence, name: bytes) -> list:
    """Every value of field ``name`` (lower-case) in ``headers``, in order."""
    return [value for key, value in headers if key == name]


def first_field(headers: Sequence, name: bytes) -> Optional[bytes]:
    """The first value of field ``name`` or ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None
