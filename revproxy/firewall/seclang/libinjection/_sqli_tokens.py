"""libinjection 3.9.2's SQL tokenizer, ported to Python (one token per ``tokenize``).

A line-by-line port of libinjection_sqli.c (Copyright (c) 2012-2016 Nick Galbreath, BSD
3-Clause, see _sqli_data.py) kept close to the C so that the two can be compared. C's
reads past the end of the input see a NUL, as they do in ModSecurity's NUL-terminated
strings; ``char`` is signed, so bytes >= 0x80 compare as negative numbers.
"""

from __future__ import annotations

import re

from ._sqli_data import CHAR_PARSE_MAP, KEYWORDS

TOKEN_SIZE = 32
MAX_TOKENS = 5

FLAG_QUOTE_NONE = 1
FLAG_QUOTE_SINGLE = 2
FLAG_QUOTE_DOUBLE = 4
FLAG_SQL_ANSI = 8
FLAG_SQL_MYSQL = 16

(T_KEYWORD, T_UNION, T_GROUP, T_EXPRESSION, T_SQLTYPE, T_FUNCTION, T_BAREWORD, T_NUMBER,
 T_VARIABLE, T_STRING, T_OPERATOR, T_LOGIC_OPERATOR, T_COMMENT, T_COLLATE, T_LEFTPARENS,
 T_RIGHTPARENS, T_LEFTBRACE, T_RIGHTBRACE, T_DOT, T_COMMA, T_COLON, T_SEMICOLON, T_TSQL,
 T_UNKNOWN, T_EVIL, T_FINGERPRINT, T_BACKSLASH) = b"kUBEtfn1vso&cA(){}.,:;T?XF\\"

SINGLE, DOUBLE, TICK = 0x27, 0x22, 0x60

_WHITE = frozenset(b" \t\n\v\f\r\xa0\x00")
_WORD_STOP = frozenset(b" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\v\f\r\"\xa0\x00")
_VAR_STOP = frozenset(b" <>:\\?=@!#~+-*/&|^%(),';\t\n\v\f\r'`\"\x00")
_DIGITS = frozenset(b"0123456789")
_HEXDIGITS = frozenset(b"0123456789ABCDEFabcdef")
_BINDIGITS = frozenset(b"01")
_MONEY = frozenset(b"0123456789.,")
_LETTERS = frozenset(b"abcdefghjiklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
KEYWORD_TYPES = {word: ord(kind) for word, kind in KEYWORDS.items()}


def lookup_word(word: bytes) -> int:
    """The keyword table's type for ``word`` (ASCII case-insensitive), 0 if absent."""
    return KEYWORD_TYPES.get(word.upper(), 0)


def is_white(ch: int) -> bool:
    return ch in _WHITE


def _set_class(chars: frozenset) -> bytes:
    return b"".join(re.escape(bytes((c,))) for c in sorted(chars))


_SPAN_RE: dict = {}
_CSPAN_RE: dict = {}


def span(s: bytes, start: int, end: int, accept: frozenset) -> int:
    """strlenspn: bytes from ``start`` in ``accept`` (NUL always accepted, as in C)."""
    rx = _SPAN_RE.get(accept)
    if rx is None:
        rx = _SPAN_RE[accept] = re.compile(b"[\\x00" + _set_class(accept) + b"]*")
    return rx.match(s, start, end).end() - start


def cspan(s: bytes, start: int, end: int, stop: frozenset) -> int:
    """strlencspn: bytes from ``start`` not in ``stop``."""
    rx = _CSPAN_RE.get(stop)
    if rx is None:
        rx = _CSPAN_RE[stop] = re.compile(b"[^" + _set_class(stop) + b"]*")
    return rx.match(s, start, end).end() - start


class Token:
    __slots__ = ("pos", "len", "count", "type", "str_open", "str_close", "val")

    def __init__(self) -> None:
        self.pos = self.len = self.count = 0
        self.type = self.str_open = self.str_close = 0
        self.val = b""

    def clear(self) -> None:
        self.pos = self.len = self.count = 0
        self.type = self.str_open = self.str_close = 0
        self.val = b""

    def assign(self, stype: int, pos: int, length: int, value: bytes) -> None:
        last = length if length < TOKEN_SIZE else TOKEN_SIZE - 1
        self.type = stype
        self.pos = pos
        self.len = last
        self.val = value[:last]

    def assign_char(self, stype: int, pos: int, value: int) -> None:
        self.type = stype
        self.pos = pos
        self.len = 1
        self.val = bytes((value,))

    def copy_from(self, other: "Token") -> None:
        self.pos, self.len, self.count = other.pos, other.len, other.count
        self.type, self.str_open, self.str_close = other.type, other.str_open, other.str_close
        self.val = other.val

    def first(self) -> int:
        return self.val[0] if self.val else 0

    def is_unary_op(self) -> bool:
        if self.type != T_OPERATOR:
            return False
        v = self.val
        if self.len == 1:
            return v in (b"+", b"-", b"!", b"~")
        if self.len == 2:
            return v == b"!!"
        if self.len == 3:
            return v.upper() == b"NOT"
        return False

    def is_arithmetic_op(self) -> bool:
        return self.type == T_OPERATOR and self.len == 1 and self.val in (
            b"*", b"/", b"-", b"+", b"%")


class State:
    """libinjection_sqli_state: the input, the flags, the token vector and counters."""

    def __init__(self, s: bytes, flags: int = 0) -> None:
        self.s = s
        self.slen = len(s)
        self.tokenvec = [Token() for _ in range(8)]
        self._dirty = False  # fresh tokens need no clearing
        self.reset(flags)

    def reset(self, flags: int) -> None:
        if flags == 0:
            flags = FLAG_QUOTE_NONE | FLAG_SQL_ANSI
        self.flags = flags
        self.pos = 0
        if self._dirty:
            for token in self.tokenvec:
                token.clear()
        self._dirty = True
        self.current = self.tokenvec[0]
        self.fingerprint = b""
        self.stats_comment_ddw = self.stats_comment_ddx = 0
        self.stats_comment_c = self.stats_comment_hash = 0
        self.stats_folds = self.stats_tokens = 0

    def at(self, i: int) -> int:
        """s[i], or NUL past the end (C's terminator)."""
        return self.s[i] if i < self.slen else 0


def parse_white(sf: State) -> int:
    return sf.pos + 1


def parse_operator1(sf: State) -> int:
    sf.current.assign_char(T_OPERATOR, sf.pos, sf.s[sf.pos])
    return sf.pos + 1


def parse_other(sf: State) -> int:
    sf.current.assign_char(T_UNKNOWN, sf.pos, sf.s[sf.pos])
    return sf.pos + 1


def parse_char(sf: State) -> int:
    ch = sf.s[sf.pos]
    sf.current.assign_char(ch, sf.pos, ch)
    return sf.pos + 1


def parse_eol_comment(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    end = s.find(b"\n", pos)
    if end < 0:
        sf.current.assign(T_COMMENT, pos, slen - pos, s[pos:])
        return slen
    sf.current.assign(T_COMMENT, pos, end - pos, s[pos:end])
    return end + 1


def parse_hash(sf: State) -> int:
    sf.stats_comment_hash += 1
    if sf.flags & FLAG_SQL_MYSQL:
        sf.stats_comment_hash += 1
        return parse_eol_comment(sf)
    sf.current.assign_char(T_OPERATOR, sf.pos, 0x23)
    return sf.pos + 1


def parse_dash(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 2 < slen and s[pos + 1] == 0x2D and is_white(s[pos + 2]):
        return parse_eol_comment(sf)
    if pos + 2 == slen and s[pos + 1] == 0x2D:
        return parse_eol_comment(sf)
    if pos + 1 < slen and s[pos + 1] == 0x2D and sf.flags & FLAG_SQL_ANSI:
        sf.stats_comment_ddx += 1
        return parse_eol_comment(sf)
    sf.current.assign_char(T_OPERATOR, pos, 0x2D)
    return pos + 1


def parse_slash(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 1 == slen or s[pos + 1] != 0x2A:
        return parse_operator1(sf)
    close = s.find(b"*/", pos + 2)
    clen = slen - pos if close < 0 else close + 2 - pos
    ctype = T_COMMENT
    # A nested "/*" (PostgreSQL) or a MySQL "/*!" comment: unparsable, evil. For an
    # unterminated comment the C computes the search length from a NULL pointer, which
    # wraps to an empty search: no nested check then.
    if close >= 0 and s.find(b"/*", pos + 2, close + 1) >= 0:
        ctype = T_EVIL
    elif pos + 2 < slen and s[pos + 2] == 0x21:
        ctype = T_EVIL
    sf.current.assign(ctype, pos, clen, s[pos:pos + clen])
    return pos + clen


def parse_backslash(sf: State) -> int:
    s, pos = sf.s, sf.pos
    if pos + 1 < sf.slen and s[pos + 1] == 0x4E:  # MySQL's \N is NULL
        sf.current.assign(T_NUMBER, pos, 2, s[pos:pos + 2])
        return pos + 2
    sf.current.assign_char(T_BACKSLASH, pos, s[pos])
    return pos + 1


def parse_operator2(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 1 >= slen:
        return parse_operator1(sf)
    if pos + 2 < slen and s[pos:pos + 3] == b"<=>":
        sf.current.assign(T_OPERATOR, pos, 3, s[pos:pos + 3])
        return pos + 3
    ch = lookup_word(s[pos:pos + 2])
    if ch:
        sf.current.assign(ch, pos, 2, s[pos:pos + 2])
        return pos + 2
    if s[pos] == 0x3A:
        sf.current.assign(T_COLON, pos, 1, s[pos:pos + 1])
        return pos + 1
    return parse_operator1(sf)


def _backslash_escaped(s: bytes, end: int, start: int) -> bool:
    """Whether s[end + 1] is escaped: an odd number of backslashes ending at ``end``."""
    ptr = end
    while ptr >= start and s[ptr] == 0x5C:
        ptr -= 1
    return (end - ptr) & 1 == 1


def parse_string_core(s: bytes, slen: int, pos: int, st: Token, delim: int,
                      offset: int) -> int:
    start = pos + offset
    d = bytes((delim,))
    qpos = s.find(d, start)
    st.str_open = delim if offset > 0 else 0
    while True:
        if qpos < 0:
            st.assign(T_STRING, start, slen - start, s[start:])
            st.str_close = 0
            return slen
        if qpos - 1 >= start and _backslash_escaped(s, qpos - 1, start):
            qpos = s.find(d, qpos + 1)
        elif qpos + 1 < slen and s[qpos + 1] == delim:
            qpos = s.find(d, qpos + 2)
        else:
            st.assign(T_STRING, start, qpos - start, s[start:qpos])
            st.str_close = delim
            return qpos + 1


def parse_string(sf: State) -> int:
    return parse_string_core(sf.s, sf.slen, sf.pos, sf.current, sf.s[sf.pos], 1)


def parse_estring(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 2 >= slen or s[pos + 1] != SINGLE:
        return parse_word(sf)
    return parse_string_core(s, slen, pos, sf.current, SINGLE, 2)


def parse_ustring(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 2 < slen and s[pos + 1] == 0x26 and s[pos + 2] == SINGLE:
        sf.pos += 2
        pos = parse_string(sf)
        sf.current.str_open = 0x75
        if sf.current.str_close == SINGLE:
            sf.current.str_close = 0x75
        return pos
    return parse_word(sf)


_QCLOSE = {0x28: 0x29, 0x5B: 0x5D, 0x7B: 0x7D, 0x3C: 0x3E}


def parse_qstring_core(sf: State, offset: int) -> int:
    s, slen = sf.s, sf.slen
    pos = sf.pos + offset
    if (pos >= slen or s[pos] not in (0x71, 0x51) or pos + 2 >= slen
            or s[pos + 1] != SINGLE):
        return parse_word(sf)
    ch = s[pos + 2]
    if ch < 33 or ch >= 0x80:  # signed char: bytes >= 0x80 are negative
        return parse_word(sf)
    ch = _QCLOSE.get(ch, ch)
    end = s.find(bytes((ch, SINGLE)), pos + 3)
    if end < 0:
        sf.current.assign(T_STRING, pos + 3, slen - pos - 3, s[pos + 3:])
        sf.current.str_open = 0x71
        sf.current.str_close = 0
        return slen
    sf.current.assign(T_STRING, pos + 3, end - pos - 3, s[pos + 3:end])
    sf.current.str_open = 0x71
    sf.current.str_close = 0x71
    return end + 2


def parse_qstring(sf: State) -> int:
    return parse_qstring_core(sf, 0)


def parse_nqstring(sf: State) -> int:
    if sf.pos + 2 < sf.slen and sf.s[sf.pos + 1] == SINGLE:
        return parse_estring(sf)
    return parse_qstring_core(sf, 1)


def _parse_bx_string(sf: State, digits: frozenset) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    if pos + 2 >= slen or s[pos + 1] != SINGLE:
        return parse_word(sf)
    wlen = span(s, pos + 2, slen, digits)
    if pos + 2 + wlen >= slen or s[pos + 2 + wlen] != SINGLE:
        return parse_word(sf)
    sf.current.assign(T_NUMBER, pos, wlen + 3, s[pos:pos + wlen + 3])
    return pos + 2 + wlen + 1


def parse_bstring(sf: State) -> int:
    return _parse_bx_string(sf, _BINDIGITS)


def parse_xstring(sf: State) -> int:
    return _parse_bx_string(sf, _HEXDIGITS)


def parse_bword(sf: State) -> int:
    s, pos = sf.s, sf.pos
    end = s.find(b"]", pos)
    if end < 0:
        sf.current.assign(T_BAREWORD, pos, sf.slen - pos, s[pos:])
        return sf.slen
    sf.current.assign(T_BAREWORD, pos, end - pos + 1, s[pos:end + 1])
    return end + 1


def parse_word(sf: State) -> int:
    s, pos = sf.s, sf.pos
    wlen = cspan(s, pos, sf.slen, _WORD_STOP)
    cur = sf.current
    cur.assign(T_BAREWORD, pos, wlen, s[pos:pos + wlen])
    val = cur.val
    for i in range(cur.len):
        if val[i] in (0x2E, 0x60):
            ch = lookup_word(val[:i])
            if ch and ch != T_BAREWORD:
                cur.clear()
                cur.assign(ch, pos, i, s[pos:pos + i])
                return pos + i
    if wlen < TOKEN_SIZE:
        cur.type = lookup_word(val) or T_BAREWORD
    return pos + wlen


def parse_tick(sf: State) -> int:
    pos = parse_string_core(sf.s, sf.slen, sf.pos, sf.current, TICK, 1)
    if lookup_word(sf.current.val) == T_FUNCTION:
        sf.current.type = T_FUNCTION
    else:
        sf.current.type = T_BAREWORD
    return pos


def parse_var(sf: State) -> int:
    s, slen = sf.s, sf.slen
    pos = sf.pos + 1
    if pos < slen and s[pos] == 0x40:
        pos += 1
        sf.current.count = 2
    else:
        sf.current.count = 1
    if pos < slen:
        if s[pos] == TICK:
            sf.pos = pos
            pos = parse_tick(sf)
            sf.current.type = T_VARIABLE
            return pos
        if s[pos] in (SINGLE, DOUBLE):
            sf.pos = pos
            pos = parse_string(sf)
            sf.current.type = T_VARIABLE
            return pos
    xlen = cspan(s, pos, slen, _VAR_STOP)
    sf.current.assign(T_VARIABLE, pos, xlen, s[pos:pos + xlen])
    return pos + xlen


def parse_money(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    cur = sf.current
    if pos + 1 == slen:
        cur.assign_char(T_BAREWORD, pos, 0x24)
        return slen
    xlen = span(s, pos + 1, slen, _MONEY)
    if xlen == 0:
        if s[pos + 1] == 0x24:
            end = s.find(b"$$", pos + 2)
            if end < 0:
                cur.assign(T_STRING, pos + 2, slen - (pos + 2), s[pos + 2:])
                cur.str_open, cur.str_close = 0x24, 0
                return slen
            cur.assign(T_STRING, pos + 2, end - (pos + 2), s[pos + 2:end])
            cur.str_open, cur.str_close = 0x24, 0x24
            return end + 2
        xlen = span(s, pos + 1, slen, _LETTERS)
        if xlen == 0 or pos + xlen + 1 == slen or s[pos + xlen + 1] != 0x24:
            cur.assign_char(T_BAREWORD, pos, 0x24)
            return pos + 1
        # $tag$ ... $tag$ (PostgreSQL). The C searches from cs + xlen + 2 (not pos +
        # xlen + 2), and rejects a hit before pos + xlen + 2.
        tag = s[pos:pos + xlen + 2]
        start = xlen + 2
        limit = start + (slen - (pos + xlen + 2))
        end = s.find(tag, start, max(limit, start))
        if end < 0 or end < pos + xlen + 2:
            cur.assign(T_STRING, pos + xlen + 2, slen - pos - xlen - 2, s[pos + xlen + 2:])
            cur.str_open, cur.str_close = 0x24, 0
            return slen
        cur.assign(T_STRING, pos + xlen + 2, end - (pos + xlen + 2), s[pos + xlen + 2:end])
        cur.str_open, cur.str_close = 0x24, 0x24
        return end + xlen + 2
    if xlen == 1 and s[pos + 1] == 0x2E:
        return parse_word(sf)
    cur.assign(T_NUMBER, pos, 1 + xlen, s[pos:pos + 1 + xlen])
    return pos + 1 + xlen


def parse_number(sf: State) -> int:
    s, slen, pos = sf.s, sf.slen, sf.pos
    cur = sf.current
    if s[pos] == 0x30 and pos + 1 < slen:
        digits = None
        if s[pos + 1] in (0x58, 0x78):
            digits = _HEXDIGITS
        elif s[pos + 1] in (0x42, 0x62):
            digits = _BINDIGITS
        if digits is not None:
            xlen = span(s, pos + 2, slen, digits)
            if xlen == 0:
                cur.assign(T_BAREWORD, pos, 2, s[pos:pos + 2])
                return pos + 2
            cur.assign(T_NUMBER, pos, 2 + xlen, s[pos:pos + 2 + xlen])
            return pos + 2 + xlen
    start = pos
    while pos < slen and s[pos] in _DIGITS:
        pos += 1
    if pos < slen and s[pos] == 0x2E:
        pos += 1
        while pos < slen and s[pos] in _DIGITS:
            pos += 1
        if pos - start == 1:
            cur.assign_char(T_DOT, start, 0x2E)
            return pos
    have_e = have_exp = False
    if pos < slen and s[pos] in (0x45, 0x65):
        have_e = True
        pos += 1
        if pos < slen and s[pos] in (0x2B, 0x2D):
            pos += 1
        while pos < slen and s[pos] in _DIGITS:
            have_exp = True
            pos += 1
    if pos < slen and s[pos] in b"dDfF":
        if pos + 1 == slen:
            pos += 1
        elif is_white(s[pos + 1]) or s[pos + 1] == 0x3B:
            pos += 1
        elif s[pos + 1] in (0x75, 0x55):
            pos += 1
    if have_e and not have_exp:
        cur.assign(T_BAREWORD, start, pos - start, s[start:pos])
    else:
        cur.assign(T_NUMBER, start, pos - start, s[start:pos])
    return pos


_PARSERS = {
    "white": parse_white, "operator1": parse_operator1, "other": parse_other,
    "char": parse_char, "hash": parse_hash, "dash": parse_dash, "slash": parse_slash,
    "backslash": parse_backslash, "operator2": parse_operator2, "string": parse_string,
    "word": parse_word, "var": parse_var, "number": parse_number, "tick": parse_tick,
    "ustring": parse_ustring, "qstring": parse_qstring, "nqstring": parse_nqstring,
    "xstring": parse_xstring, "bstring": parse_bstring, "estring": parse_estring,
    "bword": parse_bword, "money": parse_money,
}
PARSE_MAP = tuple(_PARSERS[name] for name in CHAR_PARSE_MAP)
_WHITE_SKIP = frozenset(c for c, name in enumerate(CHAR_PARSE_MAP) if name == "white")


def tokenize(sf: State) -> bool:
    """Reads the next token into ``sf.current``; False at the end of the input."""
    s, slen = sf.s, sf.slen
    if slen == 0:
        return False
    current = sf.current
    current.clear()
    if sf.pos == 0 and sf.flags & (FLAG_QUOTE_SINGLE | FLAG_QUOTE_DOUBLE):
        delim = SINGLE if sf.flags & FLAG_QUOTE_SINGLE else DOUBLE
        sf.pos = parse_string_core(s, slen, 0, current, delim, 0)
        sf.stats_tokens += 1
        return True
    parsers = PARSE_MAP
    pos = sf.pos
    while pos < slen:
        ch = s[pos]
        if ch in _WHITE_SKIP:  # parse_white, inlined: runs of blanks are common
            pos += 1
            continue
        sf.pos = pos
        pos = sf.pos = parsers[ch](sf)
        if current.type:
            sf.stats_tokens += 1
            return True
    sf.pos = pos
    return False
