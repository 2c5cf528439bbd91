"""SecLang transformations: ``TRANSFORMS``, lower-case name -> ``Callable[[bytes], bytes]``.

Each function follows ModSecurity v3 byte for byte (Coraza where v3 is ambiguous; the
differences are listed in docs/firewall-operators.md). They never raise on any input,
and return the *same object* when nothing changes (the engine caches by identity).
``none`` is not here: the engine handles it (it clears the inherited list).

Decoders work in one pass with ``re.sub`` / ``bytes.translate`` so that cost stays in C;
the two path normalisers and removeComments are byte loops behind a fast path that
returns at once when the input cannot change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Callable, Dict

from .decoders import (
    css_decode, escape_seq_decode, html_entity_decode, js_decode, url_decode,
    url_decode_uni, url_encode)
from .pathnorm import normalize_path

Transform = Callable[[bytes], bytes]

_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale
_HEX = b"0123456789abcdefABCDEF"


def _same(data: bytes, out: bytes) -> bytes:
    """``data`` itself when ``out`` equals it (identity means "unchanged")."""
    return data if out == data else out


def lowercase(data: bytes) -> bytes:
    return _same(data, data.lower())


def uppercase(data: bytes) -> bytes:
    return _same(data, data.upper())


def trim(data: bytes) -> bytes:
    return _same(data, data.strip(_SPACE))


def trim_left(data: bytes) -> bytes:
    return _same(data, data.lstrip(_SPACE))


def trim_right(data: bytes) -> bytes:
    return _same(data, data.rstrip(_SPACE))


def remove_nulls(data: bytes) -> bytes:
    return data if b"\0" not in data else data.replace(b"\0", b"")


def replace_nulls(data: bytes) -> bytes:
    return data if b"\0" not in data else data.replace(b"\0", b" ")


def remove_whitespace(data: bytes) -> bytes:
    """isspace() bytes and NBSP (0xa0) removed (ModSecurity v3)."""
    return _same(data, data.translate(None, _SPACE + b"\xa0"))


_WS_RUN = re.compile(b"[ \t\n\v\f\r\xa0]+")


def compress_whitespace(data: bytes) -> bytes:
    """Each run of whitespace (isspace() or NBSP) becomes one space."""
    return _same(data, _WS_RUN.sub(b" ", data))


# --- comments -----------------------------------------------------------------------

_C_COMMENT = re.compile(b"/\\*.*?(?:\\*/|\\Z)", re.S)


def replace_comments(data: bytes) -> bytes:
    """Each /* ... */ (or unterminated /* ...) becomes one space."""
    if b"/*" not in data:
        return data
    return _C_COMMENT.sub(b" ", data)


_COMMENT_CHARS = re.compile(b"/\\*|\\*/|<!--|-->|--|#")


def remove_comments_char(data: bytes) -> bytes:
    """Removes the comment markers /* */ <!-- --> -- and #."""
    return _same(data, _COMMENT_CHARS.sub(b"", data))


def remove_comments(data: bytes) -> bytes:
    """ModSecurity v3's removeComments, quirks kept: /* */ and <!-- --> removed, the
    byte right after a comment's end copied unexamined (a NUL when the input ends
    there), ``--`` or ``#`` outside a comment ends the output, an open comment -> ' '."""
    if not any(marker in data for marker in (b"/*", b"<!--", b"--", b"#")):
        return data
    src = data + b"\0"
    n = len(data)
    out = bytearray()
    i = 0
    incomment = False
    while i < n:
        c = src[i]
        if not incomment:
            if c == 0x2F and i + 1 < n and src[i + 1] == 0x2A:
                incomment, i = True, i + 2
            elif c == 0x3C and src[i + 1:i + 4] == b"!--" and i + 3 < n:
                incomment, i = True, i + 4
            elif (c == 0x2D and i + 1 < n and src[i + 1] == 0x2D) or c == 0x23:
                break
            else:
                out.append(c)
                i += 1
        elif c == 0x2A and i + 1 < n and src[i + 1] == 0x2F:
            incomment = False
            out.append(src[i + 2])
            i += 3
        elif c == 0x2D and i + 2 < n and src[i + 1:i + 3] == b"->":
            incomment = False
            out.append(src[i + 3])
            i += 4
        else:
            i += 1
    if incomment:
        out.append(0x20)
    return _same(data, bytes(out))


# --- command line -------------------------------------------------------------------

_CMD_SPACES = re.compile(b"[ ,;\t\r\n]+")
_CMD_SPACE_BEFORE = re.compile(b" (?=[/(])")


def cmd_line(data: bytes) -> bytes:
    """Deletes \\ " ' ^; runs of space , ; \\t \\r \\n -> one space; no space before
    / or (; lower case (ASCII)."""
    out = data.translate(None, b"\\\"'^").lower()
    out = _CMD_SPACES.sub(b" ", out)
    if b" /" in out or b" (" in out:
        out = _CMD_SPACE_BEFORE.sub(b"", out)
    return _same(data, out)


# --- hex, base64, SQL hex -----------------------------------------------------------

_HEX_PAIRS = re.compile(b"(?:[0-9a-fA-F]{2})*")


def _x2c_nibble(c: int) -> int:
    return ((c & 0xDF) - 0x41 + 10) if c >= 0x41 else c - 0x30


def hex_decode(data: bytes) -> bytes:
    """Pairs of hex digits to bytes; an odd last digit dropped; non-hex pairs decoded
    with ModSecurity's unchecked x2c arithmetic."""
    even = data[: len(data) & ~1]
    if _HEX_PAIRS.fullmatch(even):
        return bytes.fromhex(even.decode("ascii"))
    return bytes(((_x2c_nibble(even[i]) << 4) + _x2c_nibble(even[i + 1])) & 0xFF
                 for i in range(0, len(even), 2))


def hex_encode(data: bytes) -> bytes:
    return binascii.hexlify(data)


_SQL_HEX = re.compile(b"0[xX]((?:[0-9a-fA-F]{2})+)")


def sql_hex_decode(data: bytes) -> bytes:
    """0xHHHH... sequences decoded (``0x414243`` -> ``ABC``)."""
    if b"0x" not in data and b"0X" not in data:
        return data
    return _same(data, _SQL_HEX.sub(lambda m: bytes.fromhex(m.group(1).decode("ascii")), data))


_B64_PREFIX = re.compile(b"[A-Za-z0-9+/]*")
_B64_INVALID = re.compile(b"[^A-Za-z0-9+/]+")


def _b64_bits(chars: bytes) -> bytes:
    """Decode base64 alphabet characters (no padding); leftover bits dropped."""
    n = len(chars) % 4
    if n == 1:
        chars = chars[:-1]
    elif n:
        chars += b"=" * (4 - n)
    try:
        return binascii.a2b_base64(chars)  # base64.b64decode without its frames
    except (binascii.Error, ValueError):  # pragma: no cover - alphabet already checked
        return b""


def base64_decode(data: bytes) -> bytes:
    """Decodes up to the first byte outside the alphabet (padding ends it), CR/LF
    skipped (Coraza's decoder)."""
    if b"\r" in data or b"\n" in data:
        data = data.replace(b"\r", b"").replace(b"\n", b"")
    return _b64_bits(_B64_PREFIX.match(data).group(0))  # the prefix may be empty


def base64_decode_ext(data: bytes) -> bytes:
    """Forgiving decoder: every byte outside the alphabet (padding included) ignored."""
    return _b64_bits(_B64_INVALID.sub(b"", data))


def base64_encode(data: bytes) -> bytes:
    return base64.b64encode(data)


# --- UTF-8 --------------------------------------------------------------------------

_UTF8_SEQ = re.compile(
    b"[\xc0-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _utf8_repl(m: "re.Match[bytes]") -> bytes:
    seq = m.group(0)
    n = len(seq)
    if n == 2:
        d = ((seq[0] & 0x1F) << 6) | (seq[1] & 0x3F)
    elif n == 3:
        d = ((seq[0] & 0x0F) << 12) | ((seq[1] & 0x3F) << 6) | (seq[2] & 0x3F)
    else:
        d = ((seq[0] & 0x07) << 18) | ((seq[1] & 0x3F) << 12) | ((seq[2] & 0x3F) << 6) \
            | (seq[3] & 0x3F)
    out = b"%%u%04x" % d
    # ModSecurity appends the lead byte after a surrogate or an overlong form.
    if 0xD800 <= d <= 0xDFFF or d < (0x80, 0x800, 0x10000)[n - 2]:
        out += seq[:1]
    return out


def utf8_to_unicode(data: bytes) -> bytes:
    """Each multi-byte UTF-8 sequence -> %uhhhh (lower-case hex, 5 digits above
    U+FFFF); ASCII and bytes that start no sequence are copied."""
    if data.isascii():
        return data
    return _same(data, _UTF8_SEQ.sub(_utf8_repl, data))


# --- misc ---------------------------------------------------------------------------

def length(data: bytes) -> bytes:
    return b"%d" % len(data)


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _parity_table(kind: str) -> bytes:
    table = bytearray()
    for b in range(256):
        low = b & 0x7F
        odd = bin(low).count("1") & 1
        if kind == "even":
            table.append(low | (0x80 if odd else 0))
        elif kind == "odd":
            table.append(low | (0 if odd else 0x80))
        else:
            table.append(low)
    return bytes(table)


def _translator(table: bytes) -> Transform:
    def translate(data: bytes) -> bytes:
        return _same(data, data.translate(table))
    return translate


def normalise_path(data: bytes) -> bytes:
    """Removes //, /./ and dir/../ (ModSecurity's normalize_path_inplace)."""
    return _same(data, normalize_path(data, win=False))


def normalise_path_win(data: bytes) -> bytes:
    """normalisePath after turning backslashes into slashes."""
    return _same(data, normalize_path(data, win=True))


TRANSFORMS: Dict[str, Transform] = {
    "base64decode": base64_decode,
    "base64decodeext": base64_decode_ext,
    "base64encode": base64_encode,
    "cmdline": cmd_line,
    "compresswhitespace": compress_whitespace,
    "cssdecode": css_decode,
    "escapeseqdecode": escape_seq_decode,
    "hexdecode": hex_decode,
    "hexencode": hex_encode,
    "htmlentitydecode": html_entity_decode,
    "jsdecode": js_decode,
    "length": length,
    "lowercase": lowercase,
    "md5": md5,
    "normalisepath": normalise_path,
    "normalizepath": normalise_path,
    "normalisepathwin": normalise_path_win,
    "normalizepathwin": normalise_path_win,
    "parityeven7bit": _translator(_parity_table("even")),
    "parityodd7bit": _translator(_parity_table("odd")),
    "parityzero7bit": _translator(_parity_table("zero")),
    "removecomments": remove_comments,
    "removecommentschar": remove_comments_char,
    "removenulls": remove_nulls,
    "removewhitespace": remove_whitespace,
    "replacecomments": replace_comments,
    "replacenulls": replace_nulls,
    "sha1": sha1,
    "sqlhexdecode": sql_hex_decode,
    "trim": trim,
    "trimleft": trim_left,
    "trimright": trim_right,
    "uppercase": uppercase,
    "urldecode": url_decode,
    "urldecodeuni": url_decode_uni,
    "urlencode": url_encode,
    "utf8tounicode": utf8_to_unicode,
}
