"""Tests for chunked bodies (RFC 9112 7.1) and revproxy.http1.serialize, with round trips."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1 import (
    CLOSED, END, LAST_CHUNK, NEED_DATA, PAUSED, Limits, ProtocolError, RequestHead,
    RequestParser, ResponseParser, chunk, request_head, response_head,
)

HEAD = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


def body_of(chunks: Sequence[bytes], limits: Optional[Limits] = None) -> bytes:
    """Feed a chunked request in the given pieces; return the decoded body (END required)."""
    parser = RequestParser(limits or Limits())
    pieces: List[bytes] = []
    for data in chunks:
        parser.feed(data)
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                break
            if event is END:
                assert parser.next_event() is PAUSED
                return b"".join(pieces)
            if isinstance(event, bytes):
                assert event, "empty body piece"
                pieces.append(event)
    raise AssertionError("no END")


def refused(body: bytes, limits: Optional[Limits] = None) -> ProtocolError:
    """The error for a chunked request body; it must be raised without waiting."""
    parser = RequestParser(limits or Limits())
    parser.feed(HEAD + body)
    with pytest.raises(ProtocolError) as info:
        for _ in range(100):
            event = parser.next_event()
            assert event is not NEED_DATA, "parser waited for more data instead of refusing"
            assert event is not PAUSED
    return info.value


class TestChunkedBody:
    def test_chunks_are_decoded(self) -> None:
        """Chunk data is concatenated; the last chunk ends the body."""
        body = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n"
        assert body_of([HEAD + body]) == b"Wikipedia in\r\n\r\nchunks."

    def test_hex_digits_any_case_and_16_digits_with_leading_zeros(self) -> None:
        """Sizes are hex in either case; 16 digits (leading zeros) are still accepted."""
        body = b"a\r\n0123456789\r\n" + b"0" * 15 + b"B\r\nabcdefghijk\r\n0\r\n\r\n"
        assert body_of([HEAD + body]) == b"0123456789abcdefghijk"

    @pytest.mark.parametrize("ext", [
        b";a", b";a=b", b";a=b;c=d", b';a="quoted value"', b';a="esc\\"aped\\\\"',
        b';a="obs\xe9text"',
    ])
    def test_valid_extensions_are_ignored(self, ext: bytes) -> None:
        """Token and quoted-string chunk extensions are accepted and dropped."""
        assert body_of([HEAD + b"3" + ext + b"\r\nabc\r\n0" + ext + b"\r\n\r\n"]) == b"abc"

    def test_data_handed_out_before_the_chunk_is_complete(self) -> None:
        """Bytes of a large chunk are returned as they arrive, not when it is whole."""
        parser = RequestParser(Limits())
        parser.feed(HEAD + b"10\r\nabc")
        assert isinstance(parser.next_event(), RequestHead)
        assert parser.next_event() == b"abc"
        assert parser.next_event() is NEED_DATA
        parser.feed(b"defghijklmnop\r\n0\r\n\r\n")
        assert parser.next_event() == b"defghijklmnop"
        assert parser.next_event() is END

    def test_trailers_are_validated_and_dropped(self) -> None:
        """Trailer fields are parsed, not reported; END follows the body."""
        parser = RequestParser(Limits())
        parser.feed(HEAD + b"2\r\nhi\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\nGET")
        events = [parser.next_event() for _ in range(3)]
        assert events[1:] == [b"hi", END]
        assert parser.buffered_bytes() == 3

    @pytest.mark.parametrize("body,reason", [
        (b"1" * 17 + b"\r\n", "chunk size too long"),
        (b"0" * 17 + b"\r\n\r\n", "chunk size too long"),
        (b"g\r\n", "invalid chunk size"),
        (b"\r\nabc", "invalid chunk size"),
        (b"-1\r\n", "invalid chunk size"),
        (b"0x5\r\n", "invalid chunk extension"),
        (b"5 \r\nhello\r\n0\r\n\r\n", "whitespace in chunk size line"),
        (b"5 ;a=b\r\nhello\r\n0\r\n\r\n", "whitespace in chunk size line"),
        (b"5;a =b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
        (b"5;a=\xc3\xa9\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
        (b"5;\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
        (b"5;a=\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
        (b'5;a="open\r\nhello\r\n0\r\n\r\n', "invalid chunk extension"),
        (b"5;a\rb\r\nhello\r\n0\r\n\r\n", "bare CR in chunk size line"),
        (b"5\nhello\r\n0\r\n\r\n", "bare LF in chunk size line"),
        (b"5\r\nhelloX\r\n0\r\n\r\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\rX", "chunk data not followed by CRLF"),
        (b"5\r\nhello0\r\n\r\n", "chunk data not followed by CRLF"),
    ])
    def test_malformed_chunked_bodies_get_400(self, body: bytes, reason: str) -> None:
        """Each chunked framing violation is a 400 with a specific reason."""
        err = refused(body)
        assert (err.status, err.reason) == (400, reason)

    def test_extension_length_limit(self) -> None:
        """Extensions up to max_chunk_ext are fine; longer ones are 400."""
        limits = Limits(max_chunk_ext=10)
        assert body_of([HEAD + b"1;" + b"a" * 9 + b"\r\nx\r\n0\r\n\r\n"], limits) == b"x"
        err = refused(b"1;" + b"a" * 10 + b"\r\nx\r\n0\r\n\r\n", limits)
        assert err.reason == "chunk extension too long"

    def test_endless_size_line_refused_before_lf(self) -> None:
        """A size line that can no longer fit the limit is refused without its LF."""
        assert refused(b"1;" + b"a" * 2000).reason == "chunk extension too long"

    def test_too_many_size_digits_refused_before_lf(self) -> None:
        """A 17th hex digit is refused without waiting for the line end."""
        assert refused(b"1" * 17).reason == "chunk size too long"

    def test_garbage_size_refused_at_first_byte(self) -> None:
        """A size line starting with a non-hex byte is refused at once."""
        assert refused(b"z").reason == "invalid chunk size"

    @pytest.mark.parametrize("trailers,status,reason", [
        (b" folded: x\r\n\r\n", 400, "obs-fold in header"),
        (b"X : y\r\n\r\n", 400, "whitespace before colon"),
        (b"X: a\x01\r\n\r\n", 400, "control character in trailer field"),
        (b"X: y\n\r\n", 400, "bare LF in trailer section"),
        (b"X: y\r\n\n", 400, "bare LF in trailer section"),
        (b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, "too many header fields"),
    ])
    def test_bad_trailers_refused(self, trailers: bytes, status: int, reason: str) -> None:
        """Trailer fields obey the header field rules and the count limit."""
        err = refused(b"1\r\nx\r\n0\r\n" + trailers, Limits(max_header_count=2))
        assert (err.status, err.reason) == (status, reason)

    def test_oversized_trailer_section_refused(self) -> None:
        """Trailers are bounded by max_header_bytes (431), without waiting for their end."""
        err = refused(b"0\r\nX: " + b"a" * 300, Limits(max_header_bytes=200))
        assert err.status == 431

    def test_eof_inside_trailers_is_mid_request(self) -> None:
        """EOF inside the trailer section is a truncated request."""
        parser = RequestParser(Limits())
        parser.feed(HEAD + b"0\r\nX: y\r\n")
        parser.feed_eof()
        assert isinstance(parser.next_event(), RequestHead)
        with pytest.raises(ProtocolError, match="mid-request"):
            parser.next_event()


class TestSerialize:
    def test_request_head_bytes(self) -> None:
        """request_head writes the HTTP/1.1 request line, fields and the empty line."""
        assert request_head(b"GET", b"/a?b", [(b"host", b"h"), (b"x", b"1")]) == (
            b"GET /a?b HTTP/1.1\r\nhost: h\r\nx: 1\r\n\r\n"
        )

    def test_response_head_bytes(self) -> None:
        """response_head writes status line (default 1.1, or the given version) and fields."""
        assert response_head(404, b"Not Found", [(b"content-length", b"0")]) == (
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        )
        assert response_head(200, b"OK", [], version=b"1.0") == b"HTTP/1.0 200 OK\r\n\r\n"

    @pytest.mark.parametrize("headers", [
        [(b"x", b"a\r\nInjected: 1")], [(b"x", b"a\nb")], [(b"x\r\n", b"v")], [(b"x", b"a\rb")],
    ])
    def test_cr_or_lf_in_a_field_is_refused(self, headers: list) -> None:
        """A CR/LF smuggled into a name or value is never written (ValueError)."""
        with pytest.raises(ValueError):
            request_head(b"GET", b"/", headers)
        with pytest.raises(ValueError):
            response_head(200, b"OK", headers)

    def test_chunk_framing(self) -> None:
        """chunk() writes hex size, CRLF, data, CRLF; empty data gives b''."""
        assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
        assert chunk(b"") == b""
        assert LAST_CHUNK == b"0\r\n\r\n"

    def test_serialized_request_parses_back(self) -> None:
        """A head written by request_head parses to the same method, target, fields."""
        fields = [(b"host", b"h.example"), (b"x-a", b"1"), (b"x-a", b"2")]
        parser = RequestParser(Limits())
        parser.feed(request_head(b"PUT", b"/p", fields))
        head = parser.next_event()
        assert (head.method, head.target, head.headers) == (b"PUT", b"/p", tuple(fields))

    def test_serialized_response_parses_back(self) -> None:
        """A head written by response_head parses to the same status, reason, fields."""
        fields = [(b"content-length", b"0"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        parser = ResponseParser(Limits())
        parser.expect(b"GET")
        parser.feed(response_head(201, b"Created", fields))
        head = parser.next_event()
        assert (head.status, head.reason, head.headers) == (201, b"Created", tuple(fields))


@settings(max_examples=150)
@given(
    st.lists(st.binary(max_size=300), max_size=12),
    st.lists(st.integers(0, 5000), max_size=20),
)
def test_chunked_round_trip_with_any_split(parts: List[bytes], cuts: List[int]) -> None:
    """serialize.chunk() pieces + LAST_CHUNK, fed at any split points, parse to the body."""
    wire = HEAD + b"".join(chunk(p) for p in parts) + LAST_CHUNK
    bounds = [0] + sorted(c for c in cuts if c < len(wire)) + [len(wire)]
    pieces = [wire[a:b] for a, b in zip(bounds, bounds[1:])]
    assert body_of(pieces) == b"".join(parts)


@settings(max_examples=100)
@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=8))
def test_chunked_response_round_trip_byte_at_a_time(parts: List[bytes]) -> None:
    """A chunked response fed one byte at a time decodes to the original body."""
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(chunk(p) for p in parts) + LAST_CHUNK)
    parser = ResponseParser(Limits())
    parser.expect(b"GET")
    body = b""
    ended = False
    for i in range(len(wire)):
        parser.feed(wire[i:i + 1])
        event = parser.next_event()
        while event is not NEED_DATA and event is not PAUSED:
            if isinstance(event, bytes):
                body += event
            ended = ended or event is END
            event = parser.next_event()
    assert ended and body == b"".join(parts)
    parser.feed_eof()
    assert parser.next_event() is CLOSED
