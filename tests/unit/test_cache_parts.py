"""Stored byte ranges of one representation (RFC 9111 §3.3-3.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.cache.parts import Parts, parse_content_range


def test_content_range_parsing():
    assert parse_content_range(b"bytes 0-9/100") == (0, 9, 100)
    assert parse_content_range(b"BYTES 5-5/6") == (5, 5, 6)
    for bad in (b"bytes 0-9/*", b"bytes 9-0/100", b"bytes 0-100/100", b"items 0-1/2",
                b"bytes */100", b"bytes 0-9/100, 20-29/100", b"", None):
        assert parse_content_range(bad) is None


def test_adjacent_and_overlapping_parts_merge():
    parts = Parts(10).add(0, b"0123").add(4, b"45")
    assert parts.chunks == ((0, b"012345"),)
    parts = parts.add(8, b"89")
    assert parts.chunks == ((0, b"012345"), (8, b"89"))
    assert parts.missing() == [(6, 7)]
    assert not parts.complete
    whole = parts.add(5, b"567")
    assert whole.complete and whole.chunks == ((0, b"0123456789"),)


def test_slice_only_from_one_part():
    parts = Parts(10).add(0, b"0123").add(6, b"6789")
    assert parts.slice(1, 3) == b"123"
    assert parts.slice(6, 9) == b"6789"
    assert parts.slice(3, 6) is None  # spans the gap
    assert parts.slice(9, 10) is None


def test_pack_round_trip_and_rejects_junk():
    parts = Parts(10).add(2, b"23").add(7, b"789")
    assert Parts.unpack(parts.pack()) == parts
    for junk in (b"", b"\x00\x00\x00\x01\x00\x00\x00\x01x",
                 Parts(3).add(0, b"abc").pack()[:-1]):
        with pytest.raises(ValueError):
            Parts.unpack(junk)


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_any_split_into_parts_serves_the_same_bytes(body, data):
    """Whatever ranges arrive, in whatever order and overlap, every byte range that one part
    holds is served exactly as the representation has it; covering everything completes."""
    length = len(body)
    cuts = data.draw(st.lists(st.tuples(st.integers(0, length - 1), st.integers(0, length - 1)),
                              min_size=1, max_size=8))
    parts = Parts(length)
    for a, b in cuts:
        first, last = min(a, b), max(a, b)
        parts = parts.add(first, body[first:last + 1])
    for first, chunk in parts.chunks:
        assert body[first:first + len(chunk)] == chunk
    previous_end = -1
    for first, chunk in parts.chunks:
        assert first > previous_end  # sorted, apart
        previous_end = first + len(chunk)
    first, last = sorted(data.draw(st.tuples(st.integers(0, length - 1),
                                             st.integers(0, length - 1))))
    served = parts.slice(first, last)
    assert served is None or served == body[first:last + 1]
    for gap_first, gap_last in parts.missing():
        parts = parts.add(gap_first, body[gap_first:gap_last + 1])
    assert parts.complete and parts.chunks[0][1] == body
    assert Parts.unpack(parts.pack()) == parts
