"""Tests for revproxy.http1.RequestParser: RFC 9112 request rules, each with its status."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1 import (
    CHUNKED, CLOSED, END, LENGTH, NEED_DATA, NO_BODY, PAUSED, Limits, ProtocolError,
    RequestHead, RequestParser,
)

TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SIMPLE = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"


def run(chunks: Sequence[bytes], limits: Optional[Limits] = None, eof: bool = True) -> list:
    """Feed ``chunks`` one by one, starting each pipelined request; merged events.

    Consecutive body pieces are joined so that different split points compare equal.
    """
    parser = RequestParser(limits or Limits())
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
            if event is PAUSED:
                parser.start_next()
            elif event is NEED_DATA or event is CLOSED:
                break
            elif isinstance(event, bytes) and events and isinstance(events[-1], bytes):
                events[-1] += event
            else:
                events.append(event)
    return events


def head_of(data: bytes, limits: Optional[Limits] = None) -> RequestHead:
    parser = RequestParser(limits or Limits())
    parser.feed(data)
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    return head


def refused(data: bytes, limits: Optional[Limits] = None, eof: bool = False) -> ProtocolError:
    """The error raised while parsing ``data`` (without EOF unless asked): it must come now."""
    parser = RequestParser(limits or Limits())
    parser.feed(data)
    if eof:
        parser.feed_eof()
    with pytest.raises(ProtocolError) as info:
        for _ in range(100):
            event = parser.next_event()
            if event is PAUSED:
                parser.start_next()
            assert event is not NEED_DATA, "parser waited for more data instead of refusing"
            assert event is not CLOSED
    return info.value


def with_fields(*lines: bytes, version: bytes = b"1.1", target: bytes = b"/") -> bytes:
    return b"GET " + target + b" HTTP/" + version + b"\r\n" + b"".join(
        line + b"\r\n" for line in lines
    ) + b"\r\n"


class TestHead:
    def test_simple_get_gives_head_end_then_paused(self) -> None:
        """A GET yields its head, END, then PAUSED until start_next()."""
        parser = RequestParser(Limits())
        parser.feed(SIMPLE)
        head = parser.next_event()
        assert isinstance(head, RequestHead)
        assert (head.method, head.target, head.version) == (b"GET", b"/a", b"1.1")
        assert head.host == b"example.com"
        assert (head.framing, head.content_length) == (NO_BODY, None)
        assert head.keep_alive and not head.expect_continue and head.upgrade is None
        assert parser.next_event() is END
        assert parser.next_event() is PAUSED
        assert parser.next_event() is PAUSED

    def test_names_lowered_values_stripped_repeats_kept_in_order(self) -> None:
        """Field names are lower-cased, OWS stripped, repeated fields kept separately."""
        head = head_of(with_fields(
            b"Host: h", b"X-A: \t one two \t", b"x-a:two", b"Cookie: a=1", b"COOKIE: b=2"
        ))
        assert head.headers == (
            (b"host", b"h"), (b"x-a", b"one two"), (b"x-a", b"two"),
            (b"cookie", b"a=1"), (b"cookie", b"b=2"),
        )

    def test_obs_text_and_htab_allowed_in_values(self) -> None:
        """Bytes 0x80-0xFF and an inner HTAB are legal in a field value."""
        head = head_of(with_fields(b"Host: h", b"X: caf\xc3\xa9\tok\xff"))
        assert head.headers[1] == (b"x", b"caf\xc3\xa9\tok\xff")

    def test_empty_value_is_kept(self) -> None:
        """A field with an empty value is a valid field with value b''."""
        assert head_of(with_fields(b"Host: h", b"X-Empty:   ")).headers[1] == (b"x-empty", b"")

    def test_up_to_eight_leading_empty_lines_are_ignored(self) -> None:
        """CRLFs before the request line (left over from a previous body) are skipped."""
        assert head_of(b"\r\n" * 8 + SIMPLE).target == b"/a"

    def test_leading_empty_lines_split_across_reads(self) -> None:
        """A CR and its LF arriving in separate reads still form a skipped empty line."""
        assert run([b"\r", b"\n\r", b"\n" + SIMPLE])[0].target == b"/a"

    def test_too_many_leading_empty_lines_refused(self) -> None:
        """An endless stream of CRLFs is refused instead of being read forever."""
        assert refused(b"\r\n" * 9 + SIMPLE).status == 400

    def test_http10_without_host_has_empty_host(self) -> None:
        """HTTP/1.0 may omit Host: host is b'' and the connection is not kept alive."""
        head = head_of(b"GET / HTTP/1.0\r\n\r\n")
        assert (head.version, head.host, head.keep_alive) == (b"1.0", b"", False)

    def test_head_split_in_the_middle_of_the_terminator(self) -> None:
        """A head whose CRLFCRLF arrives in pieces is recognised once complete."""
        parser = RequestParser(Limits())
        for piece in (SIMPLE[:-3], SIMPLE[-3:-1]):
            parser.feed(piece)
            assert parser.next_event() is NEED_DATA
        parser.feed(SIMPLE[-1:])
        assert isinstance(parser.next_event(), RequestHead)


class TestEventsAndHeads:
    def test_sentinels_are_distinct_named_singletons(self) -> None:
        """END/NEED_DATA/PAUSED/CLOSED differ, have readable reprs and survive copying."""
        import copy
        import pickle

        sentinels = [END, NEED_DATA, PAUSED, CLOSED]
        assert len(set(map(id, sentinels))) == 4
        assert [repr(s) for s in sentinels] == ["END", "NEED_DATA", "PAUSED", "CLOSED"]
        assert all(copy.copy(s) is s and pickle.loads(pickle.dumps(s)) is s for s in sentinels)

    def test_heads_compare_by_value_and_repr_names_fields(self) -> None:
        """Two parses of the same head are equal; the repr shows the field values."""
        assert head_of(SIMPLE) == head_of(SIMPLE)
        assert head_of(SIMPLE) != head_of(SIMPLE.replace(b"/a", b"/b"))
        assert "target=b'/a'" in repr(head_of(SIMPLE))

    def test_bytearray_and_memoryview_input_accepted(self) -> None:
        """feed() accepts any bytes-like object; events are still bytes."""
        parser = RequestParser(Limits())
        parser.feed(bytearray(SIMPLE[:10]))
        parser.feed(memoryview(SIMPLE[10:]))
        assert parser.next_event().target == b"/a"


class TestRequestLine:
    @pytest.mark.parametrize("line", [
        b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b" GET / HTTP/1.1", b"GET / HTTP/1.1 ",
        b"GET /a b HTTP/1.1", b"GET\t/ HTTP/1.1", b"GET /", b"GET / http/1.1",
        b"G(T / HTTP/1.1", b"GET / HTTP/1.10", b"GET / HTTP/1", b"GET / HTTP/a.b",
    ])
    def test_malformed_request_lines_get_400(self, line: bytes) -> None:
        """Exactly one SP between three well-formed parts, else 400."""
        err = refused(line + b"\r\nHost: h\r\n\r\n")
        assert err.status == 400

    @pytest.mark.parametrize("char", [b"\x7f", b"\x80", b"\xff", b"\x00", b"\x01", b"\x1b"])
    def test_non_visible_ascii_in_target_gets_400(self, char: bytes) -> None:
        """Only 0x21-0x7E may appear in a request target."""
        err = refused(b"GET /a" + char + b"b HTTP/1.1\r\nHost: h\r\n\r\n")
        assert err.status == 400

    @pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"HTTP/3.0"])
    def test_other_http_versions_get_505(self, version: bytes) -> None:
        """A well-formed but unsupported HTTP/d.d is 505, not 400."""
        err = refused(b"GET / " + version + b"\r\nHost: h\r\n\r\n")
        assert (err.status, err.reason) == (505, "unsupported HTTP version")

    def test_bad_version_refused_before_headers_arrive(self) -> None:
        """The request line is judged as soon as its CRLF arrives."""
        assert refused(b"GET / HTTP/2.0\r\nHost: h\r\n").status == 505

    def test_target_longer_than_limit_gets_414(self) -> None:
        """A target over max_request_line is 414; one of exactly that length is fine."""
        limits = Limits(max_request_line=20)
        assert head_of(b"GET /" + b"a" * 19 + b" HTTP/1.1\r\nHost: h\r\n\r\n", limits)
        err = refused(b"GET /" + b"a" * 20 + b" HTTP/1.1\r\nHost: h\r\n\r\n", limits)
        assert (err.status, err.reason) == (414, "request target too long")

    def test_long_target_is_414_even_if_the_line_has_other_faults(self) -> None:
        """An over-long target is reported as 414 ahead of a bad version."""
        data = b"GET /" + b"a" * 30 + b" http/1.1\r\nHost: h\r\n\r\n"
        err = refused(data, Limits(max_request_line=20))
        assert err.status == 414

    def test_long_target_refused_before_line_end(self) -> None:
        """414 comes while the line is still arriving, so it is never buffered whole."""
        limits = Limits(max_request_line=100)
        assert refused(b"GET /" + b"a" * 101, limits).status == 414

    def test_partial_target_under_limit_waits(self) -> None:
        """A partial line that could still be valid just needs more data."""
        assert run([b"GET /" + b"a" * 50], Limits(max_request_line=100), eof=False) == []

    def test_non_http_first_bytes_refused_immediately(self) -> None:
        """A TLS hello on the plain port gets a 400 at once, not a header timeout."""
        assert refused(b"\x16\x03\x01\x02\x00\x01").status == 400

    def test_endless_method_refused(self) -> None:
        """A 'method' longer than any line limit is refused without waiting for a space."""
        assert refused(b"G" * 200, Limits(max_request_line=100)).status == 400


class TestTargetForms:
    def test_asterisk_form_only_with_options(self) -> None:
        """'*' is accepted for OPTIONS and refused for any other method."""
        assert head_of(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").target == b"*"
        assert refused(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n").status == 400

    def test_absolute_form_host_is_the_authority(self) -> None:
        """For absolute-form the authority is the host; Host may differ only in case."""
        head = head_of(
            b"GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n"
        )
        assert (head.host, head.target) == (b"Example.com:8080", b"http://Example.com:8080/p?q")

    def test_absolute_form_without_path_accepted(self) -> None:
        """'https://host' with an empty path is a valid absolute-form target."""
        assert head_of(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n").host == b"h"

    def test_absolute_form_disagreeing_host_refused(self) -> None:
        """A Host that names another authority than the target is refused (400)."""
        err = refused(b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n")
        assert (err.status, err.reason) == (400, "Host header disagrees with request target")

    def test_http10_absolute_form_without_host_uses_authority(self) -> None:
        """HTTP/1.0 absolute-form without Host takes its host from the target."""
        assert head_of(b"GET http://a.example/x HTTP/1.0\r\n\r\n").host == b"a.example"

    @pytest.mark.parametrize("target", [
        b"http://user@h/", b"http:///x", b"ftp://h/", b"h.example/", b"h.example:80",
        b"/a#frag", b"?x", b"http://h:port/",
    ])
    def test_odd_targets_refused(self, target: bytes) -> None:
        """Userinfo, empty authority, other schemes, bare authorities and fragments: 400."""
        assert refused(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n").status == 400

    def test_connect_authority_form_accepted(self) -> None:
        """CONNECT host:port parses (the proxy decides to refuse it); host is the target."""
        head = head_of(b"CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n")
        assert (head.method, head.host) == (b"CONNECT", b"h.example:443")

    @pytest.mark.parametrize("target", [b"/", b"h.example", b"http://h.example:443/"])
    def test_connect_other_forms_refused(self, target: bytes) -> None:
        """CONNECT requires authority-form with a port."""
        assert refused(b"CONNECT " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n").status == 400


class TestLineEndsAndLimits:
    def test_lf_only_request_refused_without_waiting(self) -> None:
        """A request using bare LF line ends gets 400 at once (no CRLFCRLF will ever come)."""
        err = refused(b"GET / HTTP/1.1\nHost: h\n\n")
        assert (err.status, err.reason) == (400, "bare LF in head")

    def test_bare_lf_inside_complete_head_refused(self) -> None:
        """A bare LF between CRLF-terminated lines is refused."""
        assert refused(b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n").reason == "bare LF in head"

    def test_bare_lf_split_from_its_predecessor_refused(self) -> None:
        """A LF at the start of a read after a non-CR byte is bare."""
        parser = RequestParser(Limits())
        parser.feed(b"GET / HTTP/1.1\r\nHost: h")
        assert parser.next_event() is NEED_DATA
        parser.feed(b"\n")
        with pytest.raises(ProtocolError, match="bare LF"):
            parser.next_event()

    @pytest.mark.parametrize("data", [
        b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", b"GET / HTTP/1.1\r\nHost: h\r\r\n\r\n",
        b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n",
    ])
    def test_bare_cr_refused(self, data: bytes) -> None:
        """A CR not followed by LF anywhere in the head is refused."""
        assert refused(data).reason == "bare CR in head"

    def test_head_over_limit_gets_431_before_its_end(self) -> None:
        """An unterminated head reaching max_header_bytes is refused without waiting."""
        limits = Limits(max_header_bytes=200)
        data = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 200
        err = refused(data, limits)
        assert (err.status, err.reason) == (431, "header section too large")

    def test_head_at_limit_accepted_one_over_refused(self) -> None:
        """max_header_bytes counts the whole head including its final CRLFCRLF."""
        base = b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n"
        limits = Limits(max_header_bytes=len(base) + 10)
        assert head_of(base[:-4] + b"a" * 10 + b"\r\n\r\n", limits)
        assert refused(base[:-4] + b"a" * 11 + b"\r\n\r\n", limits).status == 431

    def test_too_many_fields_gets_431(self) -> None:
        """More than max_header_count field lines is 431; exactly the limit is fine."""
        limits = Limits(max_header_count=5)
        fields = [b"Host: h"] + [b"X-%d: v" % i for i in range(4)]
        assert len(head_of(with_fields(*fields), limits).headers) == 5
        err = refused(with_fields(*(fields + [b"X-9: v"])), limits)
        assert (err.status, err.reason) == (431, "too many header fields")


class TestFieldLines:
    @pytest.mark.parametrize("line,reason", [
        (b"Host : h", "whitespace before colon"),
        (b"Host\t: h", "whitespace before colon"),
        (b" X: folded", "obs-fold in header"),
        (b"\tX: folded", "obs-fold in header"),
        (b"NoColon", "header field without colon"),
        (b": v", "empty header field name"),
        (b"X(y): v", "invalid character in header field name"),
        (b"X\xc3\xa9: v", "invalid character in header field name"),
        (b"X: a\x00b", "control character in header field"),
        (b"X: a\x01b", "control character in header field"),
        (b"X: a\x7fb", "control character in header field"),
        (b"X: a\x1fb", "control character in header field"),
    ])
    def test_bad_field_lines_get_400_with_reason(self, line: bytes, reason: str) -> None:
        """Each malformed field line is refused with a specific reason."""
        err = refused(with_fields(b"Host: h", line))
        assert (err.status, err.reason) == (400, reason)

    def test_obs_fold_continuation_refused(self) -> None:
        """A folded continuation line of a previous field is refused."""
        err = refused(with_fields(b"Host: h", b"X: a", b"  continued"))
        assert err.reason == "obs-fold in header"

    @settings(max_examples=100)
    @given(st.lists(st.tuples(
        st.text(TOKEN_ALPHABET, min_size=1, max_size=12),
        st.binary(max_size=30).map(
            lambda b: bytes(c for c in b if c == 9 or 0x20 <= c <= 0x7E or c >= 0x80)
        ),
    ), max_size=10))
    def test_valid_fields_are_accepted_and_preserved(self, fields: list) -> None:
        """Any token name with any legal value parses to (lower name, stripped value)."""
        pairs = [(b"x-" + name.encode(), value) for name, value in fields]
        head = head_of(with_fields(b"Host: h", *(n + b":" + v for n, v in pairs)))
        assert head.headers[1:] == tuple((n.lower(), v.strip(b" \t")) for n, v in pairs)

    @settings(max_examples=100)
    @given(
        st.binary(max_size=10),
        st.sampled_from([c for c in range(32) if c != 9] + [0x7F]),
        st.binary(max_size=10),
    )
    def test_values_with_control_bytes_refused(self, pre: bytes, ctl: int, post: bytes) -> None:
        """A NUL, CR, LF or other control byte (not HTAB) in a value is always 400."""
        clean = bytes(c for c in pre if c >= 0x20 and c != 0x7F)
        tail = bytes(c for c in post if c >= 0x20 and c != 0x7F)
        err = refused(with_fields(b"Host: h", b"X: " + clean + bytes([ctl]) + tail))
        assert err.status == 400


class TestHost:
    def test_missing_host_on_http11_refused(self) -> None:
        """HTTP/1.1 requires a Host field."""
        assert refused(b"GET / HTTP/1.1\r\nX: y\r\n\r\n").reason == "missing Host header"

    def test_repeated_host_refused_even_if_equal(self) -> None:
        """Two Host fields are refused even when they agree."""
        assert refused(with_fields(b"Host: h", b"Host: h")).reason == "repeated Host header"

    @pytest.mark.parametrize("value", [
        b"example.com", b"example.com:8080", b"127.0.0.1", b"[::1]", b"[::1]:80",
        b"[2001:db8::7]", b"xn--bcher-kva.example", b"a-b_c~d", b"%41bc",
    ])
    def test_valid_hosts_accepted(self, value: bytes) -> None:
        """reg-name, IPv4 and bracketed IPv6 with an optional numeric port are valid."""
        assert head_of(with_fields(b"Host: " + value)).host == value

    @pytest.mark.parametrize("value", [
        b"", b"a b", b"a:b", b"a:", b"a:123456", b"h:80:80", b"[::1", b"[zz::1]", b"::1",
        b"user@h", b"h/path", b"h?x", b"%4", b'a"b', b"[1::2::3]", b"[::1]x",
    ])
    def test_invalid_hosts_refused(self, value: bytes) -> None:
        """Anything but uri-host[:port] in Host is 400."""
        err = refused(with_fields(b"Host: " + value))
        assert (err.status, err.reason) == (400, "invalid Host header")


class TestContentLength:
    def test_length_body_is_delivered(self) -> None:
        """Content-Length framing delivers exactly that many bytes, then END."""
        events = run([with_fields(b"Host: h", b"Content-Length: 5") + b"hello"])
        assert (events[0].framing, events[0].content_length) == (LENGTH, 5)
        assert events[1:] == [b"hello", END]

    def test_zero_length_is_no_body(self) -> None:
        """Content-Length: 0 is NO_BODY with content_length 0."""
        head = head_of(with_fields(b"Host: h", b"Content-Length: 0"))
        assert (head.framing, head.content_length) == (NO_BODY, 0)

    def test_body_pieces_handed_out_as_they_arrive(self) -> None:
        """Body bytes are returned before the whole body is there."""
        parser = RequestParser(Limits())
        parser.feed(with_fields(b"Host: h", b"Content-Length: 10") + b"abc")
        assert isinstance(parser.next_event(), RequestHead)
        assert parser.next_event() == b"abc"
        assert parser.next_event() is NEED_DATA
        parser.feed(b"defghijXYZ")
        assert parser.next_event() == b"defghij"
        assert parser.next_event() is END
        assert parser.buffered_bytes() == 3

    @pytest.mark.parametrize("lines", [
        [b"Content-Length: 5, 5"], [b"Content-Length: 5", b"Content-Length: 5"],
        [b"Content-Length: -1"], [b"Content-Length: +5"], [b"Content-Length: 0x5"],
        [b"Content-Length:"], [b"Content-Length: 5 5"], [b"Content-Length: \xd9\xa5"],
    ])
    def test_bad_content_length_gets_400(self, lines: List[bytes]) -> None:
        """Only one field holding only digits is accepted."""
        assert refused(with_fields(b"Host: h", *lines)).status == 400

    def test_more_than_18_digits_gets_413(self) -> None:
        """A 19-digit length is 413 (never turned into a huge int); 18 digits parse."""
        assert head_of(with_fields(b"Host: h", b"Content-Length: " + b"9" * 18)).content_length \
            == 10 ** 18 - 1
        err = refused(with_fields(b"Host: h", b"Content-Length: " + b"1" * 19))
        assert err.status == 413


class TestTransferEncoding:
    def test_chunked_is_chunked_framing(self) -> None:
        """TE chunked (any case) gives CHUNKED framing and no content_length."""
        head = head_of(with_fields(b"Host: h", b"Transfer-Encoding: Chunked"))
        assert (head.framing, head.content_length) == (CHUNKED, None)

    def test_te_with_content_length_refused(self) -> None:
        """Both framings at once is a smuggling vector: 400."""
        err = refused(with_fields(b"Host: h", b"Content-Length: 3", b"Transfer-Encoding: chunked"))
        assert (err.status, err.reason) == (400, "both Content-Length and Transfer-Encoding")

    @pytest.mark.parametrize("lines,status", [
        ([b"Transfer-Encoding: gzip"], 400),
        ([b"Transfer-Encoding: chunked, gzip"], 400),
        ([b"Transfer-Encoding: chunked, chunked"], 400),
        ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], 400),
        ([b"Transfer-Encoding: ,"], 400),
        ([b"Transfer-Encoding: chunked;x=1"], 400),
        ([b"Transfer-Encoding: g zip, chunked"], 400),
        ([b"Transfer-Encoding: gzip, chunked"], 501),
        ([b"Transfer-Encoding: identity, chunked"], 501),
        ([b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"], 501),
    ])
    def test_transfer_coding_lists(self, lines: List[bytes], status: int) -> None:
        """chunked must be last and once (400); other codings are unsupported (501)."""
        assert refused(with_fields(b"Host: h", *lines)).status == status

    def test_te_split_over_fields_with_chunked_last_is_read_as_list(self) -> None:
        """TE codings are one list across fields: 'gzip' then 'chunked' is gzip,chunked."""
        err = refused(
            with_fields(b"Host: h", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked")
        )
        assert err.reason == "unsupported transfer coding"

    def test_http10_with_te_refused(self) -> None:
        """An HTTP/1.0 request cannot use Transfer-Encoding."""
        err = refused(with_fields(b"Transfer-Encoding: chunked", version=b"1.0"))
        assert err.status == 400


class TestConnectionSemantics:
    @pytest.mark.parametrize("version,lines,keep_alive", [
        (b"1.1", [], True),
        (b"1.1", [b"Connection: close"], False),
        (b"1.1", [b"Connection: keep-alive, CLOSE"], False),
        (b"1.1", [b"Connection: foo", b"Connection: Close"], False),
        (b"1.0", [], False),
        (b"1.0", [b"Connection: Keep-Alive"], True),
        (b"1.0", [b"Connection: keep-alive, close"], False),
    ])
    def test_keep_alive(self, version: bytes, lines: List[bytes], keep_alive: bool) -> None:
        """1.1 persists unless 'close'; 1.0 only with 'keep-alive' (token list, any case)."""
        assert head_of(with_fields(b"Host: h", *lines, version=version)).keep_alive is keep_alive

    @pytest.mark.parametrize("version,lines,expected", [
        (b"1.1", [b"Expect: 100-Continue"], True),
        (b"1.1", [b"Expect: 100-continue "], True),
        (b"1.1", [b"Expect: something"], False),
        (b"1.1", [], False),
        (b"1.0", [b"Expect: 100-continue"], False),
    ])
    def test_expect_continue(self, version: bytes, lines: List[bytes], expected: bool) -> None:
        """expect_continue is set only for 'Expect: 100-continue' on HTTP/1.1."""
        head = head_of(with_fields(b"Host: h", *lines, version=version))
        assert head.expect_continue is expected

    @pytest.mark.parametrize("lines,expected", [
        ([b"Connection: Upgrade", b"Upgrade: WebSocket"], b"websocket"),
        ([b"Connection: keep-alive, upgrade", b"Upgrade: h2c, WebSocket"], b"h2c, websocket"),
        ([b"Upgrade: websocket"], None),
        ([b"Connection: upgrade"], None),
    ])
    def test_upgrade(self, lines: List[bytes], expected: Optional[bytes]) -> None:
        """upgrade needs both the Connection token and an Upgrade field; lower-cased."""
        assert head_of(with_fields(b"Host: h", *lines)).upgrade == expected


class TestPipeliningAndEof:
    def test_two_requests_in_one_feed_paused_between(self) -> None:
        """The second pipelined request waits for start_next()."""
        second = b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
        parser = RequestParser(Limits())
        parser.feed(SIMPLE + second)
        assert parser.next_event().target == b"/a"
        assert parser.next_event() is END
        assert parser.next_event() is PAUSED
        assert parser.buffered_bytes() == len(second)
        parser.start_next()
        assert parser.next_event().target == b"/b"
        assert parser.next_event() == b"hi"
        assert parser.next_event() is END

    def test_start_next_mid_request_is_a_programming_error(self) -> None:
        """start_next() before END raises RuntimeError."""
        parser = RequestParser(Limits())
        parser.feed(SIMPLE)
        parser.next_event()
        with pytest.raises(RuntimeError):
            parser.start_next()

    def test_eof_between_requests_gives_closed(self) -> None:
        """EOF with nothing pending: CLOSED (after the previous request's PAUSED)."""
        parser = RequestParser(Limits())
        parser.feed(SIMPLE)
        parser.feed_eof()
        assert [parser.next_event() for _ in range(3)][1:] == [END, PAUSED]
        parser.start_next()
        assert parser.next_event() is CLOSED
        assert parser.next_event() is CLOSED

    def test_eof_on_fresh_connection_gives_closed(self) -> None:
        """A connection closed before sending anything is CLOSED, not an error."""
        parser = RequestParser(Limits())
        parser.feed_eof()
        assert parser.next_event() is CLOSED

    @pytest.mark.parametrize("data", [
        b"GET / HT", SIMPLE[:-2], b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ])
    def test_eof_mid_request_refused(self, data: bytes) -> None:
        """EOF inside a head or body is 400 'connection closed mid-request'."""
        err = refused(data, eof=True)
        assert (err.status, err.reason) == (400, "connection closed mid-request")

    def test_error_is_sticky(self) -> None:
        """After a ProtocolError every next_event() raises it again."""
        parser = RequestParser(Limits())
        parser.feed(b"GET / HTTP/1.1\n")
        with pytest.raises(ProtocolError) as first:
            parser.next_event()
        with pytest.raises(ProtocolError) as second:
            parser.next_event()
        assert second.value is first.value

    def test_take_remaining_returns_unparsed_bytes(self) -> None:
        """take_remaining() hands back (and drops) what follows the parsed message."""
        parser = RequestParser(Limits())
        parser.feed(SIMPLE + b"tunnel bytes")
        parser.next_event()
        assert parser.take_remaining() == b"tunnel bytes"
        assert parser.buffered_bytes() == 0

    def test_feed_after_eof_is_a_programming_error(self) -> None:
        """feed() after feed_eof() raises RuntimeError."""
        parser = RequestParser(Limits())
        parser.feed_eof()
        with pytest.raises(RuntimeError):
            parser.feed(b"x")

    def test_config_limits_object_is_accepted(self) -> None:
        """The config's Limits (no max_chunk_ext) can be handed to the parser directly."""
        from revproxy.config.model import Limits as ConfigLimits

        assert run([SIMPLE], ConfigLimits())[0].host == b"example.com"


PIPELINE = (
    b"\r\nGET /one HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
    b"POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
    b"PUT /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=\"v\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n"
    b"GET /four HTTP/1.0\r\n\r\n"
)


@settings(max_examples=150)
@given(st.lists(st.integers(0, len(PIPELINE)), max_size=30))
def test_any_split_gives_the_same_events(cuts: List[int]) -> None:
    """Feeding a pipeline in arbitrary pieces yields the same events as one feed."""
    bounds = [0] + sorted(cuts) + [len(PIPELINE)]
    chunks = [PIPELINE[a:b] for a, b in zip(bounds, bounds[1:])]
    assert run(chunks) == run([PIPELINE])


def test_byte_at_a_time_gives_the_same_events() -> None:
    """The worst split (one byte per read) still yields identical events."""
    expected = run([PIPELINE])
    assert [e.target for e in expected if isinstance(e, RequestHead)] == [
        b"/one", b"/two", b"/three", b"/four"
    ]
    assert b"0123456789abcdef" in [e for e in expected if isinstance(e, bytes)][1]
    assert run([PIPELINE[i:i + 1] for i in range(len(PIPELINE))]) == expected
