"""Targeted cache control (RFC 9213): ``CDN-Cache-Control`` and a field of our own.

A targeted field is a Structured Fields Dictionary (RFC 8941 §3.2) holding the same directives
as ``Cache-Control``: ``CDN-Cache-Control: max-age=600, stale-if-error=60``. A cache that
implements a list of targeted fields uses the first one of its list that a response carries
with a *valid, non-empty* value, and then ignores ``Cache-Control`` **and** ``Expires`` of that
response (RFC 9213 §2.2); without one it falls back to ``Cache-Control``.

revproxy applies that by giving the cache's policy code a *policy view* of a response's
headers: the same list with ``Cache-Control``/``Expires`` replaced by the chosen targeted
field's directives (rendered in Cache-Control syntax). The stored response keeps its original
headers, so a client still gets the origin's ``Cache-Control``; fields listed in
``strip_targeted_fields`` are removed from every response sent to a client.

Conversion of dictionary members to directives: a bare key or ``?1`` is the directive without
argument; ``?0`` leaves it out (false); an integer, a decimal, a token or a string becomes its
argument (a decimal or negative number then reads as an invalid delta-seconds: stale, as in
``Cache-Control``); an inner list (``no-cache=("set-cookie" "x-a")``) becomes the
comma-separated field list of a qualified directive. A byte sequence has no meaning for any
directive and is passed as an invalid argument. Parameters are ignored. A field that does not
parse as a dictionary is invalid as a whole and ignored (§2.1: "a cache that encounters an
invalid value MUST ignore the field").
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

Headers = Sequence[Tuple[bytes, bytes]]

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # what Cache-Control takes unquoted
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
_OWS = " \t"
_MAX_VALUE = 4096  # a targeted field longer than this is not a policy worth parsing


class _Invalid(Exception):
    pass


def parse_dictionary(text: str) -> Optional[Dict[str, object]]:
    """RFC 8941 §4.2.2 dictionary -> {key: value}; a value is ``True``/``False``, an int or
    float, a str (token or string), ``bytes`` (byte sequence) or a list of such (inner list).
    None when ``text`` is not a valid dictionary. The last duplicate key wins (§3.2)."""
    try:
        return _dictionary(text)
    except _Invalid:
        return None


def _dictionary(text: str) -> Dict[str, object]:
    result: Dict[str, object] = {}
    pos = _skip(text, 0, " ")
    end = len(text)
    if pos == end:
        return result
    while True:
        key, pos = _key(text, pos)
        if pos < end and text[pos] == "=":
            value, pos = _member_value(text, pos + 1)
        else:
            value = True
            pos = _parameters(text, pos)
        result.pop(key, None)  # keep insertion order of the last occurrence
        result[key] = value
        pos = _skip(text, pos, _OWS)
        if pos == end:
            return result
        if text[pos] != ",":
            raise _Invalid()
        pos = _skip(text, pos + 1, _OWS)
        if pos == end:
            raise _Invalid()  # trailing comma


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _key(text: str, pos: int):
    match = _KEY.match(text, pos)
    if match is None:
        raise _Invalid()
    return match.group(0), match.end()


def _member_value(text: str, pos: int):
    if pos < len(text) and text[pos] == "(":
        items: List[object] = []
        pos += 1
        while True:
            pos = _skip(text, pos, " ")
            if pos < len(text) and text[pos] == ")":
                return items, _parameters(text, pos + 1)
            item, pos = _bare_item(text, pos)
            items.append(item)
            pos = _parameters(text, pos)
            if pos >= len(text) or text[pos] not in " )":
                raise _Invalid()
    item, pos = _bare_item(text, pos)
    return item, _parameters(text, pos)


def _parameters(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] == ";":
        pos = _skip(text, pos + 1, " ")
        _, pos = _key(text, pos)
        if pos < len(text) and text[pos] == "=":
            _, pos = _bare_item(text, pos + 1)
    return pos


def _bare_item(text: str, pos: int):
    if pos >= len(text):
        raise _Invalid()
    char = text[pos]
    if char == '"':
        return _string(text, pos + 1)
    if char == "?":
        flag = text[pos + 1:pos + 2]
        if flag not in ("0", "1"):
            raise _Invalid()
        return flag == "1", pos + 2
    if char == ":":
        match = _BYTES.match(text, pos)
        if match is None:
            raise _Invalid()
        return match.group(0)[1:-1].encode("ascii"), match.end()
    if char == "-" or char.isdigit():
        match = _NUMBER.match(text, pos)
        if match is None:
            raise _Invalid()
        number = match.group(0)
        return (float(number) if "." in number else int(number)), match.end()
    match = _TOKEN.match(text, pos)
    if match is None:
        raise _Invalid()
    return match.group(0), match.end()


def _string(text: str, pos: int):
    out = []
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            if text[pos + 1:pos + 2] not in ('"', "\\"):
                raise _Invalid()
            out.append(text[pos + 1])
            pos += 2
        elif char == '"':
            return "".join(out), pos + 1
        elif not " " <= char <= "~":
            raise _Invalid()
        else:
            out.append(char)
            pos += 1
    raise _Invalid()  # unterminated


def directives(values: Sequence[bytes]) -> Optional[bytes]:
    """The targeted field lines ``values`` as one ``Cache-Control`` value, or None when the
    field is invalid or empty (then the next field of the list, or Cache-Control, applies)."""
    if sum(len(v) for v in values) > _MAX_VALUE:
        return None
    try:
        text = ", ".join(v.decode("ascii") for v in values)
    except UnicodeDecodeError:
        return None
    parsed = parse_dictionary(text)
    if not parsed:
        return None
    members = []
    for key, value in parsed.items():
        if value is False:
            continue
        if value is True:
            members.append(key)
        else:
            members.append(key + "=" + _argument(value))
    if not members:
        return None
    return ", ".join(members).encode("ascii")


def _argument(value) -> str:
    if isinstance(value, list):
        return _quote(", ".join(_item_text(item) for item in value))
    return _item_text(value) if not isinstance(value, str) or _HTTP_TOKEN.fullmatch(value) \
        else _quote(value)


def _item_text(value) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, bytes):
        return ":" + value.decode("ascii") + ":"
    return str(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TargetedPolicy:
    """The targeted fields a cache honours (precedence order) and those never relayed."""

    def __init__(self, fields: Iterable[str] = (), strip: Iterable[str] = ()):
        self.fields = tuple(name.lower().encode("ascii") for name in fields)
        self._field_set = frozenset(self.fields)
        self.strip = frozenset(name.lower().encode("ascii") for name in strip)

    def policy_headers(self, headers: Headers) -> Headers:
        """``headers`` as the cache's policy reads them: unchanged (the same object) when no
        targeted field applies, else with ``Cache-Control`` and ``Expires`` replaced by the
        first valid targeted field's directives."""
        field_set = self._field_set
        if not field_set or not any(name in field_set for name, _ in headers):
            return headers
        for target in self.fields:
            values = [value for name, value in headers if name == target]
            if not values:
                continue
            rendered = directives(values)
            if rendered is not None:
                kept = [h for h in headers if h[0] != b"cache-control" and h[0] != b"expires"]
                kept.append((b"cache-control", rendered))
                return kept
        return headers

    def applies(self, headers: Headers) -> bool:
        """Does a targeted field govern this response?"""
        return self.policy_headers(headers) is not headers


NO_TARGETS = TargetedPolicy()
