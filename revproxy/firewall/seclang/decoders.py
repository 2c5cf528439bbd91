"""Escape decoders for SecLang transformations: URL, HTML entities, JavaScript, CSS, C.

Each follows ModSecurity v3 byte for byte (see transforms.py and
docs/firewall-operators.md), runs as one ``re.sub`` pass, never raises, and returns the
input object itself when nothing changes.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes


def _same(data: bytes, out: bytes) -> bytes:
    return data if out == data else out


# --- URL ----------------------------------------------------------------------------

def url_decode(data: bytes) -> bytes:
    """%HH decoded, ``+`` -> space; an invalid or truncated escape stays as it is."""
    if b"%" not in data and b"+" not in data:
        return data
    return _same(data, unquote_to_bytes(data.replace(b"+", b" ")))


_URL_UNI = re.compile(b"%(?:[uU]([0-9a-fA-F]{4})|([0-9a-fA-F]{2}))")


def _uni_low_byte(hexdigits: bytes) -> int:
    """%uHHHH / \\uHHHH: the low byte; full-width ASCII (FF01-FF5E) mapped back to ASCII."""
    value = int(hexdigits[2:4], 16)
    if 0 < value < 0x5F and hexdigits[0:2] in (b"ff", b"FF", b"fF", b"Ff"):
        value += 0x20
    return value


def _url_uni_repl(m: "re.Match[bytes]") -> bytes:
    uni = m.group(1)
    if uni is not None:
        return bytes((_uni_low_byte(uni),))
    return bytes((int(m.group(2), 16),))


def url_decode_uni(data: bytes) -> bytes:
    """urlDecode plus Microsoft %uHHHH (low byte only, full-width ASCII folded)."""
    if b"%" not in data and b"+" not in data:
        return data
    return _same(data, _URL_UNI.sub(_url_uni_repl, data.replace(b"+", b" ")))


_URL_SAFE = frozenset(b"*0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_URL_ENC = [bytes((b,)) if b in _URL_SAFE else b"%%%02x" % b for b in range(256)]
_URL_ENC[0x20] = b"+"
_URL_NEEDS = re.compile(b"[^*0-9A-Za-z]")


def url_encode(data: bytes) -> bytes:
    """Everything but ``*``, digits and ASCII letters as %hh (lower case), space as ``+``."""
    if _URL_NEEDS.search(data) is None:
        return data
    table = _URL_ENC
    return b"".join([table[b] for b in data])


# --- HTML, JS, CSS, C escapes -------------------------------------------------------

_LONG_MAX = (1 << 63) - 1
_ENTITY = re.compile(
    b"&(?:#[xX]([0-9a-fA-F]+)|#([0-9]+)|((?i:quot|amp|lt|gt|nbsp))(?![0-9A-Za-z]));?")
_NAMED = {b"quot": b'"', b"amp": b"&", b"lt": b"<", b"gt": b">", b"nbsp": b"\xa0"}


def _entity_repl(m: "re.Match[bytes]") -> bytes:
    hexa, dec, name = m.group(1), m.group(2), m.group(3)
    if name is not None:
        return _NAMED[name.lower()]
    value = int(hexa, 16) if hexa is not None else int(dec)
    # strtol saturates at LONG_MAX, then the value is cast to one byte.
    return bytes((min(value, _LONG_MAX) & 0xFF,))


def html_entity_decode(data: bytes) -> bytes:
    """&#xHH, &#DDD (``;`` optional, one byte kept), &quot; &amp; &lt; &gt; &nbsp;."""
    if b"&" not in data:
        return data
    return _same(data, _ENTITY.sub(_entity_repl, data))


_JS = re.compile(
    b"\\\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|([0-3][0-7]{2}|[0-7]{1,2})|(.))", re.S)
_JS_SIMPLE = {b"a": b"\a", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
              b"t": b"\t", b"v": b"\v"}


def _js_repl(m: "re.Match[bytes]") -> bytes:
    uni, hexa, octal, other = m.groups()
    if uni is not None:
        return bytes((_uni_low_byte(uni),))
    if hexa is not None:
        return bytes((int(hexa, 16),))
    if octal is not None:
        return bytes((int(octal, 8),))
    return _JS_SIMPLE.get(other, other)


def js_decode(data: bytes) -> bytes:
    """\\uHHHH (low byte, full-width folded), \\xHH, \\OOO (at most \\377), \\a..\\v;
    any other escaped byte loses its backslash; a trailing backslash stays."""
    if b"\\" not in data:
        return data
    return _same(data, _JS.sub(_js_repl, data))


_CSS = re.compile(b"\\\\(?:([0-9a-fA-F]{1,6})[ \t\n\v\f\r]?|\n|(.)|\\Z)", re.S)


def _css_repl(m: "re.Match[bytes]") -> bytes:
    digits, other = m.group(1), m.group(2)
    if digits is None:
        return other if other is not None else b""
    j = len(digits)
    if j == 1:
        return bytes((int(digits, 16),))
    value = int(digits[-2:], 16)
    full = j == 4 or (j == 5 and digits[0:1] == b"0") or (j == 6 and digits[0:2] == b"00")
    if full and 0 < value < 0x5F and digits[j - 3:j - 2] in b"fF" \
            and digits[j - 4:j - 3] in b"fF":
        value += 0x20
    return bytes((value,))


def css_decode(data: bytes) -> bytes:
    """CSS 2 escapes: 1-6 hex digits (the last two kept, full-width folded), one
    whitespace after them eaten; backslash-newline and a trailing backslash removed;
    backslash before any other byte removed."""
    if b"\\" not in data:
        return data
    return _same(data, _CSS.sub(_css_repl, data))


_ESC = re.compile(b"\\\\(?:([abfnrtv\\\\?'\"])|[xX]([0-9a-fA-F]{2})|([0-7]{1,3})|(.))", re.S)


def _esc_repl(m: "re.Match[bytes]") -> bytes:
    simple, hexa, octal, other = m.groups()
    if simple is not None:
        return _JS_SIMPLE.get(simple, simple)
    if hexa is not None:
        return bytes((int(hexa, 16),))
    if octal is not None:
        return bytes((int(octal, 8) & 0xFF,))
    return other


def escape_seq_decode(data: bytes) -> bytes:
    """ANSI C escapes: \\a \\b \\f \\n \\r \\t \\v \\\\ \\? \\' \\" \\xHH \\OOO; an unknown
    escape keeps the byte after the backslash; a trailing backslash stays."""
    if b"\\" not in data:
        return data
    return _same(data, _ESC.sub(_esc_repl, data))
