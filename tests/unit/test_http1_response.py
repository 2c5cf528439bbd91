"""Tests for revproxy.http1.ResponseParser: framing (RFC 9112 6.3), 1xx, tunnels, 502s."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1 import (
    CHUNKED, CLOSED, END, LENGTH, NEED_DATA, NO_BODY, PAUSED, UNTIL_CLOSE, Limits,
    ProtocolError, ResponseHead, ResponseParser,
)


def run(methods: Sequence[bytes], chunks: Sequence[bytes], eof: bool = True) -> list:
    """Parse responses to ``methods`` from ``chunks``; merged events (body pieces joined)."""
    parser = ResponseParser(Limits())
    pending = list(methods)
    events: list = []
    for data in list(chunks) + [None]:
        if data is None:
            if not eof:
                break
            parser.feed_eof()
        else:
            parser.feed(data)
        while True:
            event = parser.next_event()
            if event is PAUSED and pending:
                parser.expect(pending.pop(0))
            elif event is NEED_DATA or event is PAUSED or event is CLOSED:
                break
            elif isinstance(event, bytes) and events and isinstance(events[-1], bytes):
                events[-1] += event
            else:
                events.append(event)
    return events


def refused(data: bytes, method: bytes = b"GET", eof: bool = False) -> ProtocolError:
    """The error raised for ``data``: it must come without waiting for more input."""
    parser = ResponseParser(Limits())
    parser.expect(method)
    parser.feed(data)
    if eof:
        parser.feed_eof()
    with pytest.raises(ProtocolError) as info:
        for _ in range(100):
            event = parser.next_event()
            assert event is not NEED_DATA, "parser waited for more data instead of refusing"
    assert info.value.status == 502
    return info.value


FRAMING_TABLE = [
    # method, status line, fields, framing, content_length, keep_alive
    (b"GET", b"HTTP/1.1 200 OK", [b"Content-Length: 5"], LENGTH, 5, True),
    (b"GET", b"HTTP/1.1 200 OK", [b"Content-Length: 0"], NO_BODY, 0, True),
    (b"GET", b"HTTP/1.1 200 OK", [b"Transfer-Encoding: chunked"], CHUNKED, None, True),
    (b"GET", b"HTTP/1.1 200 OK", [], UNTIL_CLOSE, None, False),
    (b"GET", b"HTTP/1.1 200 OK", [b"Connection: close", b"Content-Length: 1"], LENGTH, 1, False),
    (b"GET", b"HTTP/1.0 200 OK", [b"Content-Length: 1"], LENGTH, 1, False),
    (b"GET", b"HTTP/1.0 200 OK", [b"Connection: keep-alive", b"Content-Length: 1"], LENGTH, 1,
     True),
    (b"GET", b"HTTP/1.0 200 OK", [b"Connection: keep-alive"], UNTIL_CLOSE, None, False),
    (b"HEAD", b"HTTP/1.1 200 OK", [b"Content-Length: 500"], NO_BODY, None, True),
    (b"HEAD", b"HTTP/1.1 200 OK", [b"Transfer-Encoding: chunked"], NO_BODY, None, True),
    (b"HEAD", b"HTTP/1.1 200 OK", [], NO_BODY, None, True),
    (b"GET", b"HTTP/1.1 204 No Content", [b"Content-Length: 9"], NO_BODY, None, True),
    (b"GET", b"HTTP/1.1 304 Not Modified", [b"Content-Length: 9"], NO_BODY, None, True),
    (b"GET", b"HTTP/1.1 304 Not Modified", [], NO_BODY, None, True),
    (b"CONNECT", b"HTTP/1.1 200 Connection established", [], NO_BODY, None, False),
    (b"CONNECT", b"HTTP/1.1 407 Auth", [b"Content-Length: 2"], LENGTH, 2, True),
    (b"GET", b"HTTP/1.1 404 Not Found", [b"Content-Length: 3"], LENGTH, 3, True),
]


@pytest.mark.parametrize("method,line,fields,framing,length,keep_alive", FRAMING_TABLE)
def test_framing_table(
    method: bytes, line: bytes, fields: List[bytes], framing: int, length: Optional[int],
    keep_alive: bool,
) -> None:
    """Framing, content_length and keep_alive follow RFC 9112 6.3 for each case."""
    parser = ResponseParser(Limits())
    parser.expect(method)
    parser.feed(line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n")
    head = parser.next_event()
    assert isinstance(head, ResponseHead)
    assert (head.framing, head.content_length, head.keep_alive) == (framing, length, keep_alive)


class TestStatusLine:
    def test_fields_and_reason_parsed(self) -> None:
        """Status, reason (with spaces), version and lower-cased fields are reported."""
        data = b"HTTP/1.1 404 Not  Found\r\nX-A:  b \r\nContent-Length: 0\r\n\r\n"
        events = run([b"GET"], [data])
        head = events[0]
        assert (head.status, head.reason, head.version) == (404, b"Not  Found", b"1.1")
        assert head.headers == ((b"x-a", b"b"), (b"content-length", b"0"))
        assert events[1:] == [END]

    @pytest.mark.parametrize("line", [b"HTTP/1.1 200", b"HTTP/1.1 200 "])
    def test_empty_reason_with_or_without_space(self, line: bytes) -> None:
        """An empty reason is accepted, even without the SP before it."""
        head = run([b"GET"], [line + b"\r\nContent-Length: 0\r\n\r\n"])[0]
        assert (head.status, head.reason) == (200, b"")

    @pytest.mark.parametrize("line", [
        b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 099 Low", b"HTTP/1.1 600 High",
        b"HTTP/2 200 OK", b"HTTP/2.0 200 OK", b"http/1.1 200 OK", b"HTTP/1.1  200 OK",
        b"HTTP/1.1 abc OK", b"HTTP/1.1 200 O\x01K", b"HTTP/1.1 200 O\x7fK",
    ])
    def test_malformed_status_lines_are_502(self, line: bytes) -> None:
        """Any deviation from 'HTTP/1.x SP 3DIGIT SP reason' is a 502."""
        refused(line + b"\r\nContent-Length: 0\r\n\r\n")

    def test_non_http_reply_refused_at_once(self) -> None:
        """A backend that does not start with 'HTTP/' is refused on the first bytes."""
        refused(b"<html>")

    @pytest.mark.parametrize("data,reason", [
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare LF in head"),
        (b"HTTP/1.1 200 OK\r\nA: b\rC: d\r\n\r\n", "bare CR in head"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "obs-fold in header"),
        (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "whitespace before colon"),
        (b"HTTP/1.1 200 OK\r\nA: b\x00\r\n\r\n", "control character in header field"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
         "repeated Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         "both Content-Length and Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
         "chunked is not the final transfer coding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         "unsupported transfer coding"),
        (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
         "Transfer-Encoding in HTTP/1.0 response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: " + b"1" * 19 + b"\r\n\r\n",
         "Content-Length too large"),
    ])
    def test_head_violations_are_502_with_reason(self, data: bytes, reason: str) -> None:
        """Request-side head rules apply to responses, always mapped to 502."""
        assert refused(data).reason == reason

    def test_oversized_head_refused_before_its_end(self) -> None:
        """An unterminated response head over max_header_bytes is 502 at once."""
        parser = ResponseParser(Limits(max_header_bytes=100))
        parser.expect(b"GET")
        parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100)
        with pytest.raises(ProtocolError) as info:
            parser.next_event()
        assert (info.value.status, info.value.reason) == (502, "header section too large")

    def test_too_many_fields_refused(self) -> None:
        """More than max_header_count fields is a 502."""
        parser = ResponseParser(Limits(max_header_count=2))
        parser.expect(b"GET")
        parser.feed(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        with pytest.raises(ProtocolError) as info:
            parser.next_event()
        assert info.value.status == 502


class TestInterimAndTunnels:
    def test_1xx_heads_then_final_response(self) -> None:
        """100 and 103 heads are returned, then the final response to the same request."""
        data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        events = run([b"POST"], [data])
        assert [e.status for e in events if isinstance(e, ResponseHead)] == [100, 103, 200]
        assert events[0].framing == NO_BODY
        assert events[3:] == [b"ok", END]

    def test_1xx_ignores_content_length(self) -> None:
        """An interim response has no body even with a Content-Length."""
        data = b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 204 No\r\n\r\n"
        assert [getattr(e, "status", e) for e in run([b"GET"], [data])] == [100, 204, END]

    def test_101_ends_message_and_leaves_tunnel_bytes(self) -> None:
        """After 101: head, END, and take_remaining() returns what followed."""
        parser = ResponseParser(Limits())
        parser.expect(b"GET")
        parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n\x81\x05hello")
        head = parser.next_event()
        assert (head.status, head.framing, head.keep_alive) == (101, NO_BODY, False)
        assert parser.next_event() is END
        assert parser.take_remaining() == b"\x81\x05hello"
        assert parser.next_event() is PAUSED

    def test_connect_2xx_is_a_tunnel(self) -> None:
        """A 2xx to CONNECT has no body; the following bytes belong to the tunnel."""
        parser = ResponseParser(Limits())
        parser.expect(b"CONNECT")
        parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x16\x03\x01")
        assert parser.next_event().framing == NO_BODY
        assert parser.next_event() is END
        assert parser.take_remaining() == b"\x16\x03\x01"

    def test_interim_then_eof_is_truncated(self) -> None:
        """EOF after a 1xx but before the final head is a truncated response."""
        err = refused(b"HTTP/1.1 100 Continue\r\n\r\n", eof=True)
        assert err.reason == "response truncated in head"


class TestBodiesAndEof:
    def test_until_close_body_ends_at_eof(self) -> None:
        """A body without length runs until EOF, then END; not keep-alive."""
        parser = ResponseParser(Limits())
        parser.expect(b"GET")
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\npart one ")
        assert parser.next_event().framing == UNTIL_CLOSE
        assert parser.next_event() == b"part one "
        assert parser.next_event() is NEED_DATA
        parser.feed(b"part two")
        assert parser.next_event() == b"part two"
        parser.feed_eof()
        assert parser.next_event() is END
        assert parser.next_event() is CLOSED

    @pytest.mark.parametrize("data,reason", [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "response truncated in body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
         "response truncated in body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
         "response truncated in body"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "response truncated in head"),
        (b"", "connection closed before response"),
    ])
    def test_eof_inside_a_response_is_502(self, data: bytes, reason: str) -> None:
        """EOF inside a head, a LENGTH or a CHUNKED body is 502 (truncated)."""
        assert refused(data, eof=True).reason == reason

    def test_chunked_response_body(self) -> None:
        """A chunked response body is decoded and its trailers dropped."""
        data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n")
        assert run([b"GET"], [data])[1:] == [b"Wikipedia", END]

    def test_bad_chunk_in_response_is_502(self) -> None:
        """Chunked framing errors in a response map to 502."""
        refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")

    def test_two_responses_back_to_back(self) -> None:
        """After END the parser is ready for the next expect(); HEAD framing is honoured."""
        data = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        events = run([b"HEAD", b"GET"], [data])
        assert [e.framing if isinstance(e, ResponseHead) else e for e in events] == [
            NO_BODY, END, LENGTH, b"hi", END
        ]


class TestExpect:
    def test_bytes_before_expect_are_held(self) -> None:
        """Without expect() the parser returns PAUSED and keeps the bytes buffered."""
        parser = ResponseParser(Limits())
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
        assert parser.next_event() is PAUSED
        assert parser.buffered_bytes() == 19

    def test_idle_eof_is_closed(self) -> None:
        """EOF on an idle connection (no expect()) is CLOSED, not an error."""
        parser = ResponseParser(Limits())
        parser.feed_eof()
        assert parser.next_event() is CLOSED

    def test_expect_mid_response_is_a_programming_error(self) -> None:
        """expect() while a response is being parsed raises RuntimeError."""
        parser = ResponseParser(Limits())
        parser.expect(b"GET")
        with pytest.raises(RuntimeError):
            parser.expect(b"GET")


RESPONSES = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX: y\r\n\r\nhello world"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n1a;n=v\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"
    b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
    b"HTTP/1.0 200 OK\r\n\r\nuntil the end"
)
METHODS = [b"POST", b"GET", b"GET", b"GET"]


@settings(max_examples=150)
@given(st.lists(st.integers(0, len(RESPONSES)), max_size=30))
def test_any_split_gives_the_same_events(cuts: List[int]) -> None:
    """Responses fed in arbitrary pieces yield the same events as one feed."""
    bounds = [0] + sorted(cuts) + [len(RESPONSES)]
    chunks = [RESPONSES[a:b] for a, b in zip(bounds, bounds[1:])]
    assert run(METHODS, chunks) == run(METHODS, [RESPONSES])


def test_byte_at_a_time_gives_the_same_events() -> None:
    """One byte per read yields identical events (and all five heads are seen)."""
    expected = run(METHODS, [RESPONSES])
    assert [e.status for e in expected if isinstance(e, ResponseHead)] == [100, 200, 200, 304, 200]
    assert expected[-2:] == [b"until the end", END]
    assert run(METHODS, [RESPONSES[i:i + 1] for i in range(len(RESPONSES))]) == expected


def test_remembered_heads_keep_the_request_method_apart():
    """The same response bytes parse to different framings after HEAD and after GET, however
    many times they were seen (parsed heads are remembered by bytes *and* method)."""
    from revproxy.http1.parser import LENGTH, NO_BODY, ResponseParser

    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    for method, framing in ((b"GET", LENGTH), (b"HEAD", NO_BODY), (b"GET", LENGTH)):
        parser = ResponseParser()
        parser.expect(method)
        parser.feed(raw + (b"abc" if method == b"GET" else b""))
        assert parser.next_event().framing == framing
