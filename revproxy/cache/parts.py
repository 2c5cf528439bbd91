"""Partial content in the cache (RFC 9111 §3.3-3.4): the byte ranges stored of one response.

A ``206`` with a single ``Content-Range: bytes FIRST-LAST/LENGTH`` and a strong validator may
be stored as an *incomplete* response; later 206s with the same strong validator are combined
with it (§3.4), and once the parts cover every byte the entry is complete: an ordinary stored
200. An incomplete entry only answers a request whose single range lies wholly within one
stored part (§3.3).

``Parts`` is pure and immutable; ``pack``/``unpack`` give it a byte form that travels as the
body of a ``CacheEntry`` with status 206, so every store (memory, disk, memcached) keeps
partial entries without a format of its own.
"""

from __future__ import annotations

import re
import struct
from typing import List, Optional, Sequence, Tuple

from revproxy.cache.directives import get_field
from revproxy.cache.entry import pack_blobs, unpack_blobs
from revproxy.cache.ranges import if_range_allows, parse_range

_CONTENT_RANGE = re.compile(rb"[ \t]*bytes[ \t]+([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})[ \t]*\Z",
                            re.I)


def parse_content_range(value: Optional[bytes]) -> Optional[Tuple[int, int, int]]:
    """``(first, last, complete_length)`` of ``bytes FIRST-LAST/LENGTH`` (RFC 9110 §14.4),
    or None: another unit, an unknown length (``/*``), ``last < first`` or ``last >=
    length`` (invalid, §14.4), junk."""
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    first, last, length = (int(g) for g in match.groups())
    if last < first or last >= length:
        return None
    return first, last, length


class Parts:
    """The stored ranges of a representation of ``length`` bytes: ``chunks`` is a sorted list
    of ``(first, data)`` that neither overlap nor touch (adjacent parts are merged)."""

    __slots__ = ("length", "chunks")

    def __init__(self, length: int, chunks: Sequence[Tuple[int, bytes]] = ()) -> None:
        self.length = length
        self.chunks = tuple(chunks)

    def add(self, first: int, data: bytes) -> "Parts":
        """These parts plus ``data`` at ``first`` (clipped to the length). Where they overlap,
        the bytes already stored are kept: under one strong validator they are the same."""
        if not data or first >= self.length:
            return self
        data = data[:self.length - first]
        pieces: List[Tuple[int, bytes]] = []
        start, merged = first, data
        for chunk_first, chunk in self.chunks:
            chunk_last = chunk_first + len(chunk)  # exclusive
            end = start + len(merged)
            if chunk_last < start or chunk_first > end:  # apart (not even touching)
                pieces.append((chunk_first, chunk))
                continue
            new_start = min(start, chunk_first)
            new_end = max(end, chunk_last)
            buffer = bytearray(new_end - new_start)
            buffer[start - new_start:end - new_start] = merged
            buffer[chunk_first - new_start:chunk_last - new_start] = chunk  # stored bytes win
            start, merged = new_start, bytes(buffer)
        pieces.append((start, merged))
        pieces.sort()
        return Parts(self.length, pieces)

    def slice(self, first: int, last: int) -> Optional[bytes]:
        """Bytes ``first..last`` (inclusive) when one stored part holds them all, else None."""
        for chunk_first, chunk in self.chunks:
            if chunk_first <= first and last < chunk_first + len(chunk):
                return chunk[first - chunk_first:last - chunk_first + 1]
        return None

    @property
    def complete(self) -> bool:
        return len(self.chunks) == 1 and self.chunks[0][0] == 0 \
            and len(self.chunks[0][1]) == self.length

    @property
    def stored(self) -> int:
        return sum(len(chunk) for _, chunk in self.chunks)

    def missing(self) -> List[Tuple[int, int]]:
        """The inclusive ranges not stored yet, in order."""
        gaps, position = [], 0
        for chunk_first, chunk in self.chunks:
            if chunk_first > position:
                gaps.append((position, chunk_first - 1))
            position = chunk_first + len(chunk)
        if position < self.length:
            gaps.append((position, self.length - 1))
        return gaps

    def pack(self) -> bytes:
        blobs = [b"%d" % self.length]
        for chunk_first, chunk in self.chunks:
            blobs.append(b"%d" % chunk_first)
            blobs.append(chunk)
        return pack_blobs(blobs)

    @classmethod
    def unpack(cls, data: bytes) -> "Parts":
        """The parts packed in ``data``; ValueError when it is not a valid packing."""
        try:
            blobs, offset = unpack_blobs(data, 0)
        except struct.error as e:
            raise ValueError("cache parts: truncated (%s)" % (e,))
        if offset != len(data) or not blobs or len(blobs) % 2 != 1:
            raise ValueError("cache parts: bad packing")
        length = _digits(blobs[0])
        chunks, end = [], -1
        for index in range(1, len(blobs), 2):
            first, chunk = _digits(blobs[index]), blobs[index + 1]
            if first <= end or not chunk or first + len(chunk) > length:
                raise ValueError("cache parts: parts out of order or out of bounds")
            chunks.append((first, chunk))
            end = first + len(chunk)
        return cls(length, chunks)

    def __eq__(self, other):
        if not isinstance(other, Parts):
            return NotImplemented
        return self.length == other.length and self.chunks == other.chunks

    __hash__ = None

    def __repr__(self):
        return "<Parts %d/%d bytes in %d>" % (self.stored, self.length, len(self.chunks))


def _digits(value: bytes) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ValueError("cache parts: bad number")
    return int(value)


def part_response(entry, request_headers) -> Optional[Tuple[int, list, bytes]]:
    """``(206, [content-range field], body)`` answering a GET's single ``Range`` from the
    parts stored in ``entry`` (a 206 ``CacheEntry``), or None when the range is not wholly
    within one stored part, the request has several ranges or a failing ``If-Range``, or the
    Range is invalid or unsatisfiable (the origin answers those)."""
    range_lines = get_field(request_headers, b"range")
    if len(range_lines) != 1:
        return None
    if_range = get_field(request_headers, b"if-range")
    if len(if_range) > 1 or not if_range_allows(if_range[0] if if_range else None,
                                                entry.headers):
        return None
    try:
        parts = Parts.unpack(entry.body)
    except ValueError:
        return None
    ranges = parse_range(range_lines[0], parts.length)
    if not isinstance(ranges, list) or len(ranges) != 1:
        return None
    first, last = ranges[0]
    body = parts.slice(first, last)
    if body is None:
        return None
    return 206, [(b"content-range", b"bytes %d-%d/%d" % (first, last, parts.length))], body
