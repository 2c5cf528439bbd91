"""libinjection 3.9.2's XSS detection (libinjection_xss.c), ported to Python.

Copyright (c) 2012-2016 Nick Galbreath, BSD 3-Clause (see _sqli_data.py). ``is_xss(s)``
runs the HTML5 tokenizer from each of the five starting contexts and flags doctype,
dangerous tags, event-handler and URL attributes with dangerous schemes, style, and
suspicious comments.
"""

from __future__ import annotations

from . import _html5 as h5

A_NONE, A_BLACK, A_URL, A_STYLE, A_INDIRECT = range(5)

BLACKATTR = (
    (b"ACTION", A_URL), (b"ATTRIBUTENAME", A_INDIRECT), (b"BY", A_URL),
    (b"BACKGROUND", A_URL), (b"DATAFORMATAS", A_BLACK), (b"DATASRC", A_BLACK),
    (b"DYNSRC", A_URL), (b"FILTER", A_STYLE), (b"FORMACTION", A_URL), (b"FOLDER", A_URL),
    (b"FROM", A_URL), (b"HANDLER", A_URL), (b"HREF", A_URL), (b"LOWSRC", A_URL),
    (b"POSTER", A_URL), (b"SRC", A_URL), (b"STYLE", A_STYLE), (b"TO", A_URL),
    (b"VALUES", A_URL), (b"XLINK:HREF", A_URL),
)
BLACKTAG = (
    b"APPLET", b"BASE", b"COMMENT", b"EMBED", b"FRAME", b"FRAMESET", b"HANDLER", b"IFRAME",
    b"IMPORT", b"ISINDEX", b"LINK", b"LISTENER", b"META", b"NOSCRIPT", b"OBJECT",
    b"SCRIPT", b"STYLE", b"VMLFRAME", b"XML", b"XSS",
)
BLACK_ON_ATTR = tuple(b"ON" + name for name in (
    b"START ERROR CLICK MOUSEDOWN MOUSEENTER MOUSELEAVE MOUSEMOVE MOUSEOUT MOUSEOVER "
    b"MOUSEUP MOUSEWHEEL PROPERTYCHANGE FORMCHANGE FORMINPUT ABORT READYSTATECHANGE "
    b"ACTIVATE BEFOREACTIVATE AFTERPRINT BEFOREPRINT BEFOREUNLOAD BLUR CANPLAY "
    b"CANPLAYTHROUGH CHANGE CONTEXTMENU COPY CUT DBLCLICK DRAG DRAGEND DRAGENTER "
    b"DRAGLEAVE DRAGOVER DRAGSTART DROP DURATIONCHANGE EMPTIED ENDED FOCUS FOCUSIN "
    b"FOCUSOUT HASHCHANGE INPUT INVALID KEYDOWN KEYPRESS KEYUP LOAD LOADEDDATA "
    b"LOADEDMETADATA LOADSTART MESSAGE OFFLINE ONLINE OPEN PAGEHIDE PAGESHOW PASTE "
    b"PAUSE PLAY PLAYING POPSTATE PROGRESS RATECHANGE RESET RESIZE SCROLL SEARCH "
    b"SEEKED SEEKING SELECT SHOW STALLED STORAGE SUBMIT SUSPEND TIMEUPDATE TOGGLE "
    b"TOUCHCANCEL TOUCHEND TOUCHMOVE TOUCHSTART UNLOAD VOLUMECHANGE WAITING WHEEL"
).split())

_HEX = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}
_DIGIT = frozenset(b"0123456789")


def _eq_with_null(word: bytes, s: bytes) -> bool:
    """cstrcasecmp_with_null: ``s`` upper-cased, its NULs skipped, equals ``word``."""
    return s.replace(b"\0", b"").upper() == word


def html_decode_char_at(s: bytes, start: int, end: int):
    """(byte value, bytes consumed) of the possibly &#-encoded character at ``start``."""
    n = end - start
    if n <= 0:
        return -1, 0
    c = s[start]
    if c != 0x26 or n < 2:
        return c, 1
    at = (lambda i: s[start + i] if start + i < len(s) else 0)
    if at(1) != 0x23:
        return 0x26, 1
    if at(2) in (0x78, 0x58):
        ch = _HEX.get(at(3))
        if ch is None:
            return 0x26, 1
        val = ch
        i = 4
        while i < n:
            c = s[start + i]
            if c == 0x3B:
                return val, i + 1
            ch = _HEX.get(c)
            if ch is None:
                return val, i
            val = val * 16 + ch
            if val > 0x1000FF:
                return 0x26, 1
            i += 1
        return val, i
    c = at(2)
    if c not in _DIGIT:
        return 0x26, 1
    val = c - 0x30
    i = 3
    while i < n:
        c = s[start + i]
        if c == 0x3B:
            return val, i + 1
        if c not in _DIGIT:
            return val, i
        val = val * 10 + (c - 0x30)
        if val > 0x1000FF:
            return 0x26, 1
        i += 1
    return val, i


def _htmlencode_startswith(prefix: bytes, s: bytes, start: int, end: int) -> bool:
    a = 0
    first = True
    while end - start > 0:
        if a == len(prefix):
            return True
        cb, consumed = html_decode_char_at(s, start, end)
        start += consumed
        if first and cb <= 32:
            continue
        first = False
        if cb == 0 or cb == 10:
            continue
        if 0x61 <= cb <= 0x7A:
            cb -= 0x20
        if prefix[a] != cb & 0xFF:
            return False
        a += 1
    return a == len(prefix)


_BLACKTAGS = frozenset(BLACKTAG)
_BLACKATTRS = dict(BLACKATTR)
# The ON... names by length: a name is black when its first len(word) bytes (NULs
# dropped, upper-cased) are one of them.
_ON_BY_LEN = tuple(sorted(
    (n, frozenset(w for w in BLACK_ON_ATTR if len(w) == n))
    for n in {len(w) for w in BLACK_ON_ATTR}))


def is_black_tag(name: bytes) -> bool:
    if len(name) < 3:
        return False
    if name.replace(b"\0", b"").upper() in _BLACKTAGS:
        return True
    head = name[:3].upper()
    return head in (b"SVG", b"XSL")


def is_black_attr(name: bytes) -> int:
    """The attribute's class; each table is one set/dict lookup of the NUL-stripped,
    upper-cased name (or of its prefixes, for the ON... event handlers)."""
    if len(name) < 2:
        return A_NONE
    if name[:2].upper() == b"ON":
        for n, words in _ON_BY_LEN:
            if name[:n].replace(b"\0", b"").upper() in words:
                return A_BLACK
    if len(name) >= 5 and name[:5].replace(b"\0", b"").upper() in (b"XMLNS", b"XLINK"):
        return A_BLACK
    return _BLACKATTRS.get(name.replace(b"\0", b"").upper(), A_NONE)


def is_black_url(s: bytes, start: int, end: int) -> bool:
    while start < end and (s[start] <= 32 or s[start] >= 127):
        start += 1
    return any(_htmlencode_startswith(p, s, start, end)
               for p in (b"DATA", b"VIEW-SOURCE", b"JAVA", b"VBSCRIPT"))


def is_xss_in(s: bytes, flags: int) -> bool:  # noqa: C901 - one C function
    """libinjection_is_xss: the verdict for one starting context."""
    attr = A_NONE
    for ttype, start, length in h5.tokens(s, flags):
        if ttype != h5.ATTR_VALUE:
            attr = A_NONE
        if ttype == h5.DOCTYPE:
            return True
        if ttype == h5.TAG_NAME_OPEN:
            if is_black_tag(s[start:start + length]):
                return True
        elif ttype == h5.ATTR_NAME:
            attr = is_black_attr(s[start:start + length])
        elif ttype == h5.ATTR_VALUE:
            if attr in (A_BLACK, A_STYLE):
                return True
            if attr == A_URL and is_black_url(s, start, start + length):
                return True
            if attr == A_INDIRECT and is_black_attr(s[start:start + length]):
                return True
            attr = A_NONE
        elif ttype == h5.TAG_COMMENT:
            text = s[start:start + length]
            if b"`" in text:
                return True
            if length > 3:
                if text[0:1] == b"[" and text[1:3].upper() == b"IF":
                    return True
                if text[0:3].upper() == b"XML":
                    return True
            if length > 5:
                if _eq_with_null(b"IMPORT", text[:6]) or _eq_with_null(b"ENTITY", text[:6]):
                    return True
    return False


def is_xss(s: bytes) -> bool:
    """libinjection_xss: any of the five contexts finds XSS.

    Fast path: without ``<`` and ``=`` no context can produce a tag, a comment, a
    doctype or an attribute value, the only tokens that can flag (the data context
    needs ``<`` to leave text; the attribute contexts need ``=`` to reach a value, or
    ``>`` then ``<`` to reach a tag), so the answer is False without tokenizing."""
    if b"<" not in s and b"=" not in s:
        return False
    return any(is_xss_in(s, flags) for flags in range(5))
