"""libinjection 3.9.2's HTML5 tokenizer (libinjection_html5.c), ported to Python.

Copyright (c) 2012-2016 Nick Galbreath, BSD 3-Clause (see _sqli_data.py). ``tokens(s,
flags)`` yields (token type, start, length); the state functions are the C ones, each
returning True with a token or False at the end.
"""

from __future__ import annotations

from typing import Iterator, Tuple

DATA_STATE, VALUE_NO_QUOTE, VALUE_SINGLE_QUOTE, VALUE_DOUBLE_QUOTE, VALUE_BACK_QUOTE = range(5)
(DATA_TEXT, TAG_NAME_OPEN, TAG_NAME_CLOSE, TAG_NAME_SELFCLOSE, TAG_DATA, TAG_CLOSE,
 ATTR_NAME, ATTR_VALUE, TAG_COMMENT, DOCTYPE) = range(10)

_WHITE = frozenset(b" \t\n\v\f\r\x00")  # strchr() also finds the NUL terminator
_SKIP_WHITE = frozenset(b"\x00 \t\n\x0b\x0c\r")
_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class H5:
    __slots__ = ("s", "len", "pos", "is_close", "state", "token_start", "token_len",
                 "token_type")

    def __init__(self, s: bytes, flags: int) -> None:
        self.s = s
        self.len = len(s)
        self.pos = 0
        self.is_close = False
        self.token_start = self.token_len = self.token_type = 0
        self.state = {
            DATA_STATE: state_data,
            VALUE_NO_QUOTE: state_before_attribute_name,
            VALUE_SINGLE_QUOTE: state_attribute_value_single_quote,
            VALUE_DOUBLE_QUOTE: state_attribute_value_double_quote,
            VALUE_BACK_QUOTE: state_attribute_value_back_quote,
        }[flags]

    def token(self, ttype: int, start: int, length: int) -> None:
        self.token_type, self.token_start, self.token_len = ttype, start, length


def tokens(s: bytes, flags: int) -> Iterator[Tuple[int, int, int]]:
    hs = H5(s, flags)
    while hs.state(hs):
        yield hs.token_type, hs.token_start, hs.token_len


def _skip_white(hs: H5) -> int:
    s, n = hs.s, hs.len
    while hs.pos < n:
        ch = s[hs.pos]
        if ch in _SKIP_WHITE:
            hs.pos += 1
        else:
            return ch
    return -1


def state_eof(hs: H5) -> bool:
    return False


def state_data(hs: H5) -> bool:
    idx = hs.s.find(b"<", hs.pos)
    if idx < 0:
        hs.token(DATA_TEXT, hs.pos, hs.len - hs.pos)
        hs.state = state_eof
        return hs.token_len != 0
    hs.token(DATA_TEXT, hs.pos, idx - hs.pos)
    hs.pos = idx + 1
    hs.state = state_tag_open
    if hs.token_len == 0:
        return state_tag_open(hs)
    return True


def state_tag_open(hs: H5) -> bool:
    if hs.pos >= hs.len:
        return False
    ch = hs.s[hs.pos]
    if ch == 0x21:
        hs.pos += 1
        return state_markup_declaration_open(hs)
    if ch == 0x2F:
        hs.pos += 1
        hs.is_close = True
        return state_end_tag_open(hs)
    if ch == 0x3F:
        hs.pos += 1
        return state_bogus_comment(hs)
    if ch == 0x25:
        hs.pos += 1
        return state_bogus_comment2(hs)
    if ch in _LETTERS or ch == 0:
        return state_tag_name(hs)
    if hs.pos == 0:
        return state_data(hs)
    hs.token(DATA_TEXT, hs.pos - 1, 1)
    hs.state = state_data
    return True


def state_end_tag_open(hs: H5) -> bool:
    if hs.pos >= hs.len:
        return False
    ch = hs.s[hs.pos]
    if ch == 0x3E:
        return state_data(hs)
    if ch in _LETTERS:
        return state_tag_name(hs)
    hs.is_close = False
    return state_bogus_comment(hs)


def state_tag_name_close(hs: H5) -> bool:
    hs.is_close = False
    hs.token(TAG_NAME_CLOSE, hs.pos, 1)
    hs.pos += 1
    hs.state = state_data if hs.pos < hs.len else state_eof
    return True


def state_tag_name(hs: H5) -> bool:
    s, n = hs.s, hs.len
    pos = hs.pos
    while pos < n:
        ch = s[pos]
        if ch == 0:
            pos += 1
        elif ch in _WHITE:
            hs.token(TAG_NAME_OPEN, hs.pos, pos - hs.pos)
            hs.pos = pos + 1
            hs.state = state_before_attribute_name
            return True
        elif ch == 0x2F:
            hs.token(TAG_NAME_OPEN, hs.pos, pos - hs.pos)
            hs.pos = pos + 1
            hs.state = state_self_closing_start_tag
            return True
        elif ch == 0x3E:
            hs.token(TAG_NAME_OPEN, hs.pos, pos - hs.pos)
            if hs.is_close:
                hs.pos = pos + 1
                hs.is_close = False
                hs.token_type = TAG_CLOSE
                hs.state = state_data
            else:
                hs.pos = pos
                hs.state = state_tag_name_close
            return True
        else:
            pos += 1
    hs.token(TAG_NAME_OPEN, hs.pos, n - hs.pos)
    hs.state = state_eof
    return True


def state_before_attribute_name(hs: H5) -> bool:
    ch = _skip_white(hs)
    if ch == -1:
        return False
    if ch == 0x2F:
        hs.pos += 1
        return state_self_closing_start_tag(hs)
    if ch == 0x3E:
        hs.state = state_data
        hs.token(TAG_NAME_CLOSE, hs.pos, 1)
        hs.pos += 1
        return True
    return state_attribute_name(hs)


def state_attribute_name(hs: H5) -> bool:
    s, n = hs.s, hs.len
    pos = hs.pos + 1
    while pos < n:
        ch = s[pos]
        if ch in _WHITE:
            hs.token(ATTR_NAME, hs.pos, pos - hs.pos)
            hs.state = state_after_attribute_name
            hs.pos = pos + 1
            return True
        if ch == 0x2F:
            hs.token(ATTR_NAME, hs.pos, pos - hs.pos)
            hs.state = state_self_closing_start_tag
            hs.pos = pos + 1
            return True
        if ch == 0x3D:
            hs.token(ATTR_NAME, hs.pos, pos - hs.pos)
            hs.state = state_before_attribute_value
            hs.pos = pos + 1
            return True
        if ch == 0x3E:
            hs.token(ATTR_NAME, hs.pos, pos - hs.pos)
            hs.state = state_tag_name_close
            hs.pos = pos
            return True
        pos += 1
    hs.token(ATTR_NAME, hs.pos, n - hs.pos)
    hs.state = state_eof
    hs.pos = n
    return True


def state_after_attribute_name(hs: H5) -> bool:
    ch = _skip_white(hs)
    if ch == -1:
        return False
    if ch == 0x2F:
        hs.pos += 1
        return state_self_closing_start_tag(hs)
    if ch == 0x3D:
        hs.pos += 1
        return state_before_attribute_value(hs)
    if ch == 0x3E:
        return state_tag_name_close(hs)
    return state_attribute_name(hs)


def state_before_attribute_value(hs: H5) -> bool:
    ch = _skip_white(hs)
    if ch == -1:
        hs.state = state_eof
        return False
    if ch == 0x22:
        return state_attribute_value_double_quote(hs)
    if ch == 0x27:
        return state_attribute_value_single_quote(hs)
    if ch == 0x60:
        return state_attribute_value_back_quote(hs)
    return state_attribute_value_no_quote(hs)


def _attribute_value_quote(hs: H5, qchar: bytes) -> bool:
    if hs.pos > 0:
        hs.pos += 1
    idx = hs.s.find(qchar, hs.pos)
    if idx < 0:
        hs.token(ATTR_VALUE, hs.pos, hs.len - hs.pos)
        hs.state = state_eof
    else:
        hs.token(ATTR_VALUE, hs.pos, idx - hs.pos)
        hs.state = state_after_attribute_value_quoted_state
        hs.pos += hs.token_len + 1
    return True


def state_attribute_value_double_quote(hs: H5) -> bool:
    return _attribute_value_quote(hs, b'"')


def state_attribute_value_single_quote(hs: H5) -> bool:
    return _attribute_value_quote(hs, b"'")


def state_attribute_value_back_quote(hs: H5) -> bool:
    return _attribute_value_quote(hs, b"`")


def state_attribute_value_no_quote(hs: H5) -> bool:
    s, n = hs.s, hs.len
    pos = hs.pos
    while pos < n:
        ch = s[pos]
        if ch in _WHITE:
            hs.token(ATTR_VALUE, hs.pos, pos - hs.pos)
            hs.pos = pos + 1
            hs.state = state_before_attribute_name
            return True
        if ch == 0x3E:
            hs.token(ATTR_VALUE, hs.pos, pos - hs.pos)
            hs.pos = pos
            hs.state = state_tag_name_close
            return True
        pos += 1
    hs.state = state_eof
    hs.token(ATTR_VALUE, hs.pos, n - hs.pos)
    return True


def state_after_attribute_value_quoted_state(hs: H5) -> bool:
    if hs.pos >= hs.len:
        return False
    ch = hs.s[hs.pos]
    if ch in _WHITE:
        hs.pos += 1
        return state_before_attribute_name(hs)
    if ch == 0x2F:
        hs.pos += 1
        return state_self_closing_start_tag(hs)
    if ch == 0x3E:
        hs.token(TAG_NAME_CLOSE, hs.pos, 1)
        hs.pos += 1
        hs.state = state_data
        return True
    return state_before_attribute_name(hs)


def state_self_closing_start_tag(hs: H5) -> bool:
    if hs.pos >= hs.len:
        return False
    if hs.s[hs.pos] == 0x3E:
        hs.token(TAG_NAME_SELFCLOSE, hs.pos - 1, 2)
        hs.state = state_data
        hs.pos += 1
        return True
    return state_before_attribute_name(hs)


def state_bogus_comment(hs: H5) -> bool:
    idx = hs.s.find(b">", hs.pos)
    if idx < 0:
        hs.token(TAG_COMMENT, hs.pos, hs.len - hs.pos)
        hs.pos = hs.len
        hs.state = state_eof
    else:
        hs.token(TAG_COMMENT, hs.pos, idx - hs.pos)
        hs.pos = idx + 1
        hs.state = state_data
    return True


def state_bogus_comment2(hs: H5) -> bool:
    s, n = hs.s, hs.len
    pos = hs.pos
    while True:
        idx = s.find(b"%", pos)
        if idx < 0 or idx + 1 >= n:
            hs.token(TAG_COMMENT, hs.pos, n - hs.pos)
            hs.pos = n
            hs.state = state_eof
            return True
        if s[idx + 1] != 0x3E:
            pos = idx + 1
            continue
        hs.token(TAG_COMMENT, hs.pos, idx - hs.pos)
        hs.pos = idx + 2
        hs.state = state_data
        return True


def state_markup_declaration_open(hs: H5) -> bool:
    s, pos = hs.s, hs.pos
    remaining = hs.len - pos
    if remaining >= 7 and s[pos:pos + 7].upper() == b"DOCTYPE":
        return state_doctype(hs)
    if remaining >= 7 and s[pos:pos + 7] == b"[CDATA[":
        hs.pos += 7
        return state_cdata(hs)
    if remaining >= 2 and s[pos:pos + 2] == b"--":
        hs.pos += 2
        return state_comment(hs)
    return state_bogus_comment(hs)


def _comment_to_end(hs: H5) -> bool:
    hs.state = state_eof
    hs.token(TAG_COMMENT, hs.pos, hs.len - hs.pos)
    return True


def state_comment(hs: H5) -> bool:
    s, end = hs.s, hs.len
    pos = hs.pos
    while True:
        idx = s.find(b"-", pos)
        if idx < 0 or idx > end - 3:
            return _comment_to_end(hs)
        offset = 1
        while idx + offset < end and s[idx + offset] == 0:
            offset += 1
        if idx + offset == end:
            return _comment_to_end(hs)
        ch = s[idx + offset]
        if ch != 0x2D and ch != 0x21:
            pos = idx + 1
            continue
        offset += 1
        if idx + offset == end:
            return _comment_to_end(hs)
        if s[idx + offset] != 0x3E:
            pos = idx + 1
            continue
        offset += 1
        hs.token(TAG_COMMENT, hs.pos, idx - hs.pos)
        hs.pos = idx + offset
        hs.state = state_data
        return True


def state_cdata(hs: H5) -> bool:
    s, n = hs.s, hs.len
    pos = hs.pos
    while True:
        idx = s.find(b"]", pos)
        if idx < 0 or idx > n - 3:
            hs.state = state_eof
            hs.token(DATA_TEXT, hs.pos, n - hs.pos)
            return True
        if s[idx + 1] == 0x5D and s[idx + 2] == 0x3E:
            hs.state = state_data
            hs.token(DATA_TEXT, hs.pos, idx - hs.pos)
            hs.pos = idx + 3
            return True
        pos = idx + 1


def state_doctype(hs: H5) -> bool:
    hs.token_start = hs.pos
    hs.token_type = DOCTYPE
    idx = hs.s.find(b">", hs.pos)
    if idx < 0:
        hs.state = state_eof
        hs.token_len = hs.len - hs.pos
    else:
        hs.state = state_data
        hs.token_len = idx - hs.pos
        hs.pos = idx + 1
    return True
