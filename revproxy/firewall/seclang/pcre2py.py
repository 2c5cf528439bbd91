"""PCRE syntax the CRS uses that Python's ``re`` spells differently (for the @rx fallback).

``translate(pattern) -> pattern`` rewrites, outside and inside character classes:

- ``\\x{HH}`` -> ``\\xHH`` (a byte; code points above 0xff are refused: patterns are
  matched byte by byte);
- ``\\z`` -> ``\\Z`` and PCRE's ``\\Z`` -> ``(?=\\n?\\Z)``;
- a look-behind whose alternatives have different (fixed) widths, ``(?<!ab|c)`` ->
  ``(?<!ab)(?<!c)`` and ``(?<=ab|c)`` -> ``(?:(?<=ab)|(?<=c))`` (Python wants one width);
- possessive quantifiers (``\\s*+``) -> greedy ones before Python 3.11 (which has them):
  a possessive match is also a greedy one, so this can only add matches;
- a flag setting inside the pattern, ``^(?i)up`` (PCRE: from here to the end of the
  group, across its later alternatives) -> scoped groups, ``^(?i:up)``, closed and
  reopened at each ``|`` of that group, since Python only takes global flags at the
  start.
"""

from __future__ import annotations

import re
import sys
from typing import List

_POSSESSIVE_OK = sys.version_info >= (3, 11)

_FLAGS = re.compile(rb"\(\?([imsx]*(?:-[imsx]+)?)\)")
_HEX_BRACE = re.compile(rb"x\{([0-9a-fA-F]+)\}")


class TranslationError(ValueError):
    pass


def _escape(pattern: bytes, i: int, out: bytearray) -> int:
    """Copies the escape at ``pattern[i] == '\\'``; returns the index after it."""
    if i + 1 >= len(pattern):
        out += b"\\"
        return i + 1
    nxt = pattern[i + 1:i + 2]
    if nxt == b"x":
        m = _HEX_BRACE.match(pattern, i + 1)
        if m:
            value = int(m.group(1), 16)
            if value > 0xFF:
                raise TranslationError("\\x{%s} is not a byte" % m.group(1).decode())
            out += b"\\x%02x" % value
            return m.end()
    elif nxt == b"z":
        out += b"\\Z"
        return i + 2
    elif nxt == b"Z":
        out += b"(?=\\n?\\Z)"
        return i + 2
    out += pattern[i:i + 2]
    return i + 2


def _class(pattern: bytes, i: int, out: bytearray) -> int:
    """Copies the character class starting at ``pattern[i] == '['``."""
    out += b"["
    i += 1
    if pattern[i:i + 1] == b"^":
        out += b"^"
        i += 1
    if pattern[i:i + 1] == b"]":
        out += b"]"
        i += 1
    while i < len(pattern):
        c = pattern[i:i + 1]
        if c == b"\\":
            i = _escape(pattern, i, out)
        elif c == b"]":
            out += b"]"
            return i + 1
        elif pattern.startswith(b"[:", i):
            end = pattern.find(b":]", i + 2)
            end = len(pattern) if end < 0 else end + 2
            out += pattern[i:end]
            i = end
        else:
            out += c
            i += 1
    return i


def _group_end(pattern: bytes, i: int) -> int:
    """The index after the ``)`` closing the group opened at ``pattern[i] == '('``."""
    depth = 0
    scratch = bytearray()
    while i < len(pattern):
        c = pattern[i:i + 1]
        if c == b"\\":
            i = _escape(pattern, i, scratch)
            continue
        if c == b"[":
            i = _class(pattern, i, scratch)
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise TranslationError("unbalanced parenthesis")


def _split_alternatives(body: bytes) -> List[bytes]:
    parts, depth, start, i = [], 0, 0, 0
    scratch = bytearray()
    while i < len(body):
        c = body[i:i + 1]
        if c == b"\\":
            i = _escape(body, i, scratch)
            continue
        if c == b"[":
            i = _class(body, i, scratch)
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
        elif c == b"|" and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts


def _lookbehind(pattern: bytes, i: int, out: bytearray) -> int:
    """Copies the look-behind at ``i``, split into one look-behind per alternative."""
    end = _group_end(pattern, i)
    kind = pattern[i + 3:i + 4]
    alternatives = [translate(a) for a in _split_alternatives(pattern[i + 4:end - 1])]
    if len(alternatives) == 1:
        out += b"(?<" + kind + alternatives[0] + b")"
    elif kind == b"!":
        out += b"".join(b"(?<!" + a + b")" for a in alternatives)
    else:
        out += b"(?:" + b"|".join(b"(?<=" + a + b")" for a in alternatives) + b")"
    return end


_NEEDS = re.compile(rb"\\[xzZ]|\(\?<[!=]|[*+?}]\+")


def translate(pattern: bytes) -> bytes:
    """``pattern`` in Python ``re`` syntax (unchanged when nothing needs rewriting)."""
    if _NEEDS.search(pattern) is None \
            and not any(m.start() > 0 for m in _FLAGS.finditer(pattern)):
        return pattern
    out = bytearray()
    # One entry per open group: the flag strings opened as scoped groups at its level.
    levels: List[List[bytes]] = [[]]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i:i + 1]
        if c == b"\\":
            i = _escape(pattern, i, out)
        elif c == b"[":
            i = _class(pattern, i, out)
        elif c == b"(" and pattern.startswith((b"(?<!", b"(?<="), i):
            i = _lookbehind(pattern, i, out)
        elif c == b"+" and not _POSSESSIVE_OK and out[-1:] in (b"*", b"+", b"?", b"}") \
                and not out.endswith(b"\\" + out[-1:]):
            i += 1  # possessive -> greedy
        elif c == b"(":
            m = _FLAGS.match(pattern, i)
            if m and (i > 0 or levels[-1]):
                out += b"(?" + m.group(1) + b":"
                levels[-1].append(m.group(1))
                i = m.end()
            else:
                out += c
                levels.append([])
                i += 1
        elif c == b"|":
            active = levels[-1]
            out += b")" * len(active) + b"|" + b"".join(b"(?" + f + b":" for f in active)
            i += 1
        elif c == b")":
            out += b")" * len(levels[-1]) + b")"
            if len(levels) > 1:
                levels.pop()
            i += 1
        else:
            out += c
            i += 1
    out += b")" * len(levels[-1])
    return bytes(out)
