"""Serialising HTTP/1.1 heads and chunks (RFC 9112).

Inputs are trusted to be valid (they come from our parser or our own code); as a last
defence against header injection, a head whose names/values contain CR or LF is refused
with ValueError rather than written.
"""

from __future__ import annotations

from typing import Iterable, Tuple

LAST_CHUNK = b"0\r\n\r\n"  # last-chunk with no trailers


def request_head(method: bytes, target: bytes, headers: Iterable[Tuple[bytes, bytes]]) -> bytes:
    """``method SP target SP HTTP/1.1 CRLF``, the field lines, then the empty line."""
    return _head(b"%s %s HTTP/1.1\r\n" % (method, target), headers)


def response_head(
    status: int, reason: bytes, headers: Iterable[Tuple[bytes, bytes]], version: bytes = b"1.1"
) -> bytes:
    """``HTTP/<version> SP status SP reason CRLF``, the field lines, then the empty line."""
    return _head(b"HTTP/%s %d %s\r\n" % (version, status, reason), headers)


def _head(start_line: bytes, headers: Iterable[Tuple[bytes, bytes]]) -> bytes:
    lines = [b"%s: %s" % field for field in headers]
    lines.append(b"\r\n")
    data = start_line + b"\r\n".join(lines)
    count = len(lines) + 1  # start line, one per field, the empty line
    if data.count(b"\n") != count or data.count(b"\r") != count:
        raise ValueError("CR or LF inside a head component: refusing to serialise")
    return data


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked coding carrying ``data``; ``b""`` for empty data.

    (An empty chunk would be the last-chunk: use ``LAST_CHUNK`` to end a body.)
    """
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)
