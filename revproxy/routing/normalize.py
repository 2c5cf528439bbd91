"""Request-target normalisation (RFC 3986 §6.2.2, §5.2.4) before routing.

The router and every prefix rule see one canonical spelling of a path, so ``/api``,
``/%61pi`` and ``/x/../api`` cannot be told apart by an attacker. Only what is safe to
normalise is normalised; anything ambiguous is refused with a 400 rather than guessed at:

* percent-escapes of unreserved characters (``ALPHA DIGIT - . _ ~``) are decoded, every
  other escape is kept with upper-case hex digits (``%2f`` stays an escape: ``%2F``);
* dot-segments are removed after that decoding, so ``%2E%2E`` is a ``..`` too;
* empty segments (``//``) are kept: backends may give them meaning;
* a path that climbs above the root (``/../x``) is refused, not clamped to ``/x``: a clamp
  would hide a probe from the logs and may disagree with the backend's own resolution;
* refused too: malformed escapes, ``%00``, a raw backslash, ``%2F``/``%5C`` unless
  ``allow_encoded_slash`` (backends decode them into separators a prefix rule never saw),
  a ``#`` anywhere, bytes outside visible ASCII, and any form other than origin-form,
  absolute-form (``http``/``https`` only) or ``*``. Authority-form (CONNECT) is not a path.

The query is returned raw (not normalised); its meaning belongs to the backend.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

from revproxy.http1.errors import ProtocolError

_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_HEX = "0123456789abcdefABCDEF"
_ESCAPE = re.compile(r"%([0-9A-Fa-f][0-9A-Fa-f])?")
# Visible ASCII except backslash; '#' is refused separately with its own reason.
_BAD_PATH_BYTE = re.compile(rb"[^\x21-\x5b\x5d-\x7e]")
_ABSOLUTE = re.compile(rb"(?i)https?://[^/?]*")

_MALFORMED = object()
_NUL = object()
_SLASH = object()


def _escape_table() -> dict:
    """Map every two-hex-digit spelling to its normalised replacement or a refusal marker."""
    table = {}
    for hi in _HEX:
        for lo in _HEX:
            value = int(hi + lo, 16)
            char = chr(value)
            if value == 0:
                table[hi + lo] = _NUL
            elif char in "/\\":
                table[hi + lo] = _SLASH
            elif char in _UNRESERVED:
                table[hi + lo] = char
            else:
                table[hi + lo] = "%" + (hi + lo).upper()
    return table


_DECODE = _escape_table()


class Target(NamedTuple):
    """A normalised request target: ``path`` is canonical, ``query`` is raw or None."""

    path: str
    query: Optional[str]


def _refuse(reason: str) -> ProtocolError:
    return ProtocolError(400, reason)


def normalize_target(target: bytes, allow_encoded_slash: bool = False) -> Target:
    """Return the canonical ``Target`` for a raw request-target, or raise ProtocolError(400)."""
    if b"#" in target:
        raise _refuse("fragment in request target")
    if target == b"*":
        return Target("*", None)
    if target[:1] != b"/":
        absolute = _ABSOLUTE.match(target)
        if absolute is None:
            raise _refuse("request target is not origin-form or absolute-form")
        target = target[absolute.end():]
        if target[:1] != b"/":
            target = b"/" + target
    path, sep, query = target.partition(b"?")
    if _BAD_PATH_BYTE.search(path) is not None:
        raise _refuse("invalid character in path")
    text = path.decode("ascii")
    if "%" in text:
        text = _decode_escapes(text, allow_encoded_slash)
    if "/." in text:
        text = _remove_dot_segments(text)
    return Target(text, query.decode("latin-1") if sep else None)


def _decode_escapes(path: str, allow_encoded_slash: bool) -> str:
    """Decode unreserved escapes, upper-case the others, refuse the dangerous ones."""

    def replace(match: "re.Match[str]") -> str:
        digits = match.group(1)
        if digits is None:
            raise _refuse("malformed percent-escape in path")
        result = _DECODE[digits]
        if result is _NUL:
            raise _refuse("encoded NUL in path")
        if result is _SLASH:
            if not allow_encoded_slash:
                raise _refuse("encoded slash or backslash in path")
            return "%" + digits.upper()
        return result  # type: ignore[return-value]

    return _ESCAPE.sub(replace, path)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path; climbing above the root is refused."""
    segments = path.split("/")
    last = len(segments) - 1
    out = [""]
    for index in range(1, last + 1):
        segment = segments[index]
        if segment == "..":
            if len(out) == 1:
                raise _refuse("path climbs above the root")
            out.pop()
        elif segment != ".":
            out.append(segment)
            continue
        # A trailing "." or ".." names the directory: keep the final slash.
        if index == last:
            out.append("")
    return "/".join(out)
