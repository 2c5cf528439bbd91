"""libinjection 3.9.2's SQLi detection, ported to Python: folding, fingerprint, verdict.

``is_sqli(data) -> (bool, fingerprint)``. A port of libinjection_sqli.c (Copyright (c)
2012-2016 Nick Galbreath, BSD 3-Clause, see _sqli_data.py); the tokenizer is in
_sqli_tokens.py.
"""

from __future__ import annotations

from typing import Tuple

from ._sqli_tokens import (
    FLAG_QUOTE_DOUBLE, FLAG_QUOTE_NONE, FLAG_QUOTE_SINGLE, FLAG_SQL_ANSI, FLAG_SQL_MYSQL,
    MAX_TOKENS, TOKEN_SIZE, T_BACKSLASH, T_BAREWORD, T_COLLATE, T_COMMA, T_COMMENT, T_DOT,
    T_EVIL, T_EXPRESSION, T_FINGERPRINT, T_FUNCTION, T_GROUP, T_KEYWORD, T_LEFTBRACE,
    T_LEFTPARENS, T_LOGIC_OPERATOR, T_NUMBER, T_OPERATOR, T_RIGHTBRACE, T_RIGHTPARENS,
    T_SEMICOLON, T_SQLTYPE, T_STRING, T_TSQL, T_UNION, T_VARIABLE, TICK, State, Token,
    lookup_word, tokenize)

_MERGE_LEFT = frozenset((T_KEYWORD, T_BAREWORD, T_OPERATOR, T_UNION, T_FUNCTION,
                         T_EXPRESSION, T_TSQL, T_SQLTYPE))
_MERGE_RIGHT = _MERGE_LEFT | {T_LOGIC_OPERATOR}
_FUNCTION_WORDS = frozenset((
    b"USER_ID", b"USER_NAME", b"DATABASE", b"PASSWORD", b"USER", b"CURRENT_USER",
    b"CURRENT_DATE", b"CURRENT_TIME", b"CURRENT_TIMESTAMP", b"LOCALTIME",
    b"LOCALTIMESTAMP"))


def _merge_words(a: Token, b: Token) -> bool:
    """"UNION" + "ALL" -> "UNION ALL" when the pair is in the keyword table."""
    if a.type not in _MERGE_LEFT or b.type not in _MERGE_RIGHT:
        return False
    size = a.len + b.len + 1
    if size >= TOKEN_SIZE:
        return False
    merged = a.val + b" " + b.val
    ch = lookup_word(merged)
    if ch:
        a.assign(ch, a.pos, size, merged)
        return True
    return False


def _five_token_special(tv) -> bool:
    t0, t1, t2, t3, t4 = (tv[i].type for i in range(5))
    return ((t0 == T_NUMBER and t1 in (T_OPERATOR, T_COMMA) and t2 == T_LEFTPARENS
             and t3 == T_NUMBER and t4 == T_RIGHTPARENS)
            or (t0 == T_BAREWORD and t1 == T_OPERATOR and t2 == T_LEFTPARENS
                and t3 in (T_BAREWORD, T_NUMBER) and t4 == T_RIGHTPARENS)
            or (t0 == T_NUMBER and t1 == T_RIGHTPARENS and t2 == T_COMMA
                and t3 == T_LEFTPARENS and t4 == T_NUMBER)
            or (t0 == T_BAREWORD and t1 == T_RIGHTPARENS and t2 == T_OPERATOR
                and t3 == T_LEFTPARENS and t4 == T_BAREWORD))


_VALUES = (T_NUMBER, T_BAREWORD, T_VARIABLE, T_STRING)


def _fold_three(tv, left: int) -> int:
    """The three-token folds: how many tokens to drop (0: none applies)."""
    a, b, c = tv[left], tv[left + 1], tv[left + 2]
    at, bt, ct = a.type, b.type, c.type
    if at == T_NUMBER and bt == T_OPERATOR and ct == T_NUMBER:
        return 2
    if at == T_OPERATOR and bt != T_LEFTPARENS and ct == T_OPERATOR:
        return 2
    if at == T_LOGIC_OPERATOR and ct == T_LOGIC_OPERATOR:
        return 2
    if at == T_VARIABLE and bt == T_OPERATOR and ct in (T_VARIABLE, T_NUMBER, T_BAREWORD):
        return 2
    if at in (T_BAREWORD, T_NUMBER) and bt == T_OPERATOR and ct in (T_NUMBER, T_BAREWORD):
        return 2
    if at in _VALUES and bt == T_OPERATOR and b.val == b"::" and ct == T_SQLTYPE:
        return 2
    if at in _VALUES and bt == T_COMMA and ct in _VALUES:
        return 2
    if at in (T_EXPRESSION, T_GROUP, T_COMMA) and b.is_unary_op() and ct == T_LEFTPARENS:
        b.copy_from(c)
        return 1
    if (at in (T_KEYWORD, T_EXPRESSION, T_GROUP) and b.is_unary_op()
            and ct in _VALUES + (T_FUNCTION,)):
        b.copy_from(c)
        return 1
    if at == T_COMMA and b.is_unary_op() and ct in _VALUES:
        b.copy_from(c)
        return 3
    if at == T_COMMA and b.is_unary_op() and ct == T_FUNCTION:
        b.copy_from(c)
        return 1
    if at == T_BAREWORD and bt == T_DOT and ct == T_BAREWORD:
        return 2
    if at == T_EXPRESSION and bt == T_DOT and ct == T_BAREWORD:
        b.copy_from(c)
        return 1
    if at == T_FUNCTION and bt == T_LEFTPARENS and ct != T_RIGHTPARENS:
        if a.val.upper() == b"USER":
            a.type = T_BAREWORD
    return 0


class _Reader:
    """Reads tokens into the vector, setting comments aside as the C does."""

    def __init__(self, sf: State) -> None:
        self.sf = sf
        self.last_comment = Token()
        self.more = True

    def fill(self, pos: int, left: int, want: int) -> int:
        sf = self.sf
        while self.more and pos <= MAX_TOKENS and pos - left < want:
            sf.current = sf.tokenvec[pos]
            self.more = tokenize(sf)
            if self.more:
                if sf.current.type == T_COMMENT:
                    self.last_comment.copy_from(sf.current)
                else:
                    self.last_comment.type = 0
                    pos += 1
        return pos


def fold(sf: State) -> int:  # noqa: C901 - a transcription of one C function
    """libinjection_sqli_fold: the number of tokens in the folded fingerprint."""
    tv = sf.tokenvec
    pos = left = 0
    reader = _Reader(sf)
    sf.current = tv[0]
    while reader.more:
        reader.more = tokenize(sf)
        cur = sf.current
        if not (cur.type in (T_COMMENT, T_LEFTPARENS, T_SQLTYPE) or cur.is_unary_op()):
            break
    if not reader.more:
        return 0
    pos += 1
    while True:
        if pos >= MAX_TOKENS and _five_token_special(tv):
            if pos > MAX_TOKENS:
                tv[1].copy_from(tv[MAX_TOKENS])
                pos, left = 2, 0
            else:
                pos, left = 1, 0
        if not reader.more or left >= MAX_TOKENS:
            left = pos
            break
        pos = reader.fill(pos, left, 2)
        if pos - left < 2:
            left = pos
            continue
        a, b = tv[left], tv[left + 1]
        if a.type == T_STRING and b.type == T_STRING:
            pos -= 1
            continue
        if a.type == T_SEMICOLON and b.type == T_SEMICOLON:
            pos -= 1
            continue
        if a.type in (T_OPERATOR, T_LOGIC_OPERATOR) and (
                b.is_unary_op() or b.type == T_SQLTYPE):
            pos -= 1
            left = 0
            continue
        if a.type == T_LEFTPARENS and b.is_unary_op():
            pos -= 1
            if left > 0:
                left -= 1
            continue
        if _merge_words(a, b):
            pos -= 1
            if left > 0:
                left -= 1
            continue
        if (a.type == T_SEMICOLON and b.type == T_FUNCTION
                and b.val[:2].upper() == b"IF"):
            b.type = T_TSQL
            continue
        if (a.type in (T_BAREWORD, T_VARIABLE) and b.type == T_LEFTPARENS
                and a.val.upper() in _FUNCTION_WORDS):
            a.type = T_FUNCTION
            continue
        if a.type == T_KEYWORD and a.val.upper() in (b"IN", b"NOT IN"):
            a.type = T_OPERATOR if b.type == T_LEFTPARENS else T_BAREWORD
            continue
        if a.type == T_OPERATOR and a.val.upper() in (b"LIKE", b"NOT LIKE"):
            if b.type == T_LEFTPARENS:
                a.type = T_FUNCTION
        elif a.type == T_SQLTYPE and b.type in (
                T_BAREWORD, T_NUMBER, T_SQLTYPE, T_LEFTPARENS, T_FUNCTION, T_VARIABLE,
                T_STRING):
            a.copy_from(b)
            pos -= 1
            left = 0
            continue
        elif a.type == T_COLLATE and b.type == T_BAREWORD:
            if b"_" in b.val.split(b"\0", 1)[0]:
                b.type = T_SQLTYPE
                left = 0
        elif a.type == T_BACKSLASH:
            if b.is_arithmetic_op():
                a.type = T_NUMBER
            else:
                a.copy_from(b)
                pos -= 1
            left = 0
            continue
        elif a.type == T_LEFTPARENS and b.type == T_LEFTPARENS:
            pos -= 1
            left = 0
            continue
        elif a.type == T_RIGHTPARENS and b.type == T_RIGHTPARENS:
            pos -= 1
            left = 0
            continue
        elif a.type == T_LEFTBRACE and b.type == T_BAREWORD:
            if b.len == 0:
                b.type = T_EVIL
                return left + 2
            left = 0
            pos -= 2
            continue
        elif b.type == T_RIGHTBRACE:
            pos -= 1
            left = 0
            continue

        pos = reader.fill(pos, left, 3)
        if pos - left < 3:
            left = pos
            continue
        delta = _fold_three(tv, left)
        if delta:
            pos -= delta
            left = 0
            continue
        left += 1

    if left < MAX_TOKENS and reader.last_comment.type == T_COMMENT:
        tv[left].copy_from(reader.last_comment)
        left += 1
    if left > MAX_TOKENS:
        left = MAX_TOKENS
    return left


def fingerprint(sf: State, flags: int) -> bytes:
    """libinjection_sqli_fingerprint: fold with ``flags``; b"X" when unparsable."""
    sf.reset(flags)
    tlen = fold(sf)
    tv = sf.tokenvec
    last = tv[tlen - 1] if tlen > 0 else None
    if (tlen > 2 and last.type == T_BAREWORD and last.str_open == TICK and last.len == 0
            and last.str_close == 0):
        last.type = T_COMMENT
    fp = bytes(tv[i].type for i in range(tlen))
    if T_EVIL in fp:
        fp = b"X"
        tv[0].type = T_EVIL
        tv[0].val = b"X"
        tv[1].type = 0
    sf.fingerprint = fp
    return fp


def _blacklisted(fp: bytes) -> bool:
    return bool(fp) and lookup_word(b"0" + fp) == T_FINGERPRINT


def _byte(sf: State, i: int) -> int:
    """s[i] as C's signed char compares it (NUL past the end)."""
    ch = sf.at(i)
    return ch - 256 if ch >= 0x80 else ch


def _not_whitelisted(sf: State) -> bool:  # noqa: C901 - a transcription of one C function
    fp = sf.fingerprint
    tv = sf.tokenvec
    tlen = len(fp)
    if tlen > 1 and fp[-1] == T_COMMENT and b"sp_password" in sf.s:
        return True
    if tlen == 2:
        if fp[1] == T_UNION:
            return sf.stats_tokens != 2
        if tv[1].first() == 0x23:
            return False
        if tv[0].type == T_BAREWORD and tv[1].type == T_COMMENT and tv[1].first() != 0x2F:
            return False
        if tv[0].type == T_NUMBER and tv[1].type == T_COMMENT:
            if tv[1].first() == 0x2F or sf.stats_tokens > 2:
                return True
            ch = _byte(sf, tv[0].len)
            if ch <= 32:
                return True
            if ch == 0x2F and sf.at(tv[0].len + 1) == 0x2A:
                return True
            if ch == 0x2D and sf.at(tv[0].len + 1) == 0x2D:
                return True
            return False
        if tv[1].len > 2 and tv[1].first() == 0x2D:
            return False
    elif tlen == 3:
        if fp in (b"sos", b"s&s"):
            return (tv[0].str_open == 0 and tv[2].str_close == 0
                    and tv[0].str_close == tv[2].str_open)
        if fp in (b"s&n", b"n&1", b"1&1", b"1&v", b"1&s"):
            if sf.stats_tokens == 3:
                return False
        elif tv[1].type == T_KEYWORD:
            if tv[1].len < 5 or tv[1].val[:4].upper() != b"INTO":
                return False
    return True


def _check(sf: State) -> bool:
    return _blacklisted(sf.fingerprint) and _not_whitelisted(sf)


def is_sqli(data: bytes) -> Tuple[bool, bytes]:
    """libinjection_sqli: (True, fingerprint) for SQLi, else (False, b"")."""
    if not data:
        return False, b""
    sf = State(data)
    mysql_reparse = False
    for quote, needed in ((FLAG_QUOTE_NONE, True), (FLAG_QUOTE_SINGLE, b"'" in data)):
        if not needed:
            continue
        fingerprint(sf, quote | FLAG_SQL_ANSI)
        if _check(sf):
            return True, sf.fingerprint
        mysql_reparse = bool(sf.stats_comment_ddx or sf.stats_comment_hash)
        if mysql_reparse:
            fingerprint(sf, quote | FLAG_SQL_MYSQL)
            if _check(sf):
                return True, sf.fingerprint
    if b'"' in data:
        fingerprint(sf, FLAG_QUOTE_DOUBLE | FLAG_SQL_MYSQL)
        if _check(sf):
            return True, sf.fingerprint
    return False, b""
