"""The chunk-size line of the chunked transfer coding (RFC 9112 section 7.1).

Strict: no whitespace anywhere in the line (the grammar's BWS is refused, as smuggling
defences recommend), at most 16 hex digits, extensions bounded by ``max_chunk_ext``.
"""

from __future__ import annotations

import re

from .errors import ProtocolError
from .fields import TOKEN_CHARS

MAX_SIZE_DIGITS = 16
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]*")
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_TOKEN = rb"[" + TOKEN_CHARS + rb"]+"
_EXTENSIONS = re.compile(
    rb"(?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)+\Z"
)


def size_line_limit(max_ext: int) -> int:
    """Longest acceptable chunk-size line, CRLF included."""
    return MAX_SIZE_DIGITS + max_ext + 2


def check_partial_size_line(buf: bytes, start: int, end: int, max_ext: int) -> None:
    """Reject an incomplete size line early: bad first byte, or too long to ever end."""
    digits = _HEX_RUN.match(buf, start, end).end() - start
    if digits > MAX_SIZE_DIGITS:
        raise ProtocolError(400, "chunk size too long")
    if digits == 0 and end > start and buf[start] != 13:
        raise ProtocolError(400, "invalid chunk size")
    if end - start >= size_line_limit(max_ext):
        raise ProtocolError(400, "chunk extension too long")


def parse_size_line(buf: bytes, start: int, lf: int, max_ext: int) -> int:
    """Return the chunk size of the line ``buf[start:lf+1]`` (``lf`` indexes its LF)."""
    if lf == start or buf[lf - 1] != 13:
        raise ProtocolError(400, "bare LF in chunk size line")
    end = lf - 1
    stop = _HEX_RUN.match(buf, start, end).end()
    digits = stop - start
    if digits == 0:
        raise ProtocolError(400, "invalid chunk size")
    if digits > MAX_SIZE_DIGITS:
        raise ProtocolError(400, "chunk size too long")
    if stop != end:
        _check_extensions(buf[stop:end], max_ext)
    return int(buf[start:stop], 16)


def _check_extensions(ext: bytes, max_ext: int) -> None:
    if len(ext) > max_ext:
        raise ProtocolError(400, "chunk extension too long")
    if _EXTENSIONS.match(ext) is None:
        if ext[:1] in (b" ", b"\t"):
            raise ProtocolError(400, "whitespace in chunk size line")
        if b"\r" in ext:
            raise ProtocolError(400, "bare CR in chunk size line")
        raise ProtocolError(400, "invalid chunk extension")
