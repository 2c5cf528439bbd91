"""HTTP/2 request heads, the header-block guard, the reset budget and the protocol choice
(pure parts of revproxy.http2)."""

from __future__ import annotations

import unittest

from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1.errors import ProtocolError
from revproxy.http1.heads import CHUNKED, LENGTH, NO_BODY
from revproxy.http1.parser import Limits
from revproxy.http2.dispatch import choose
from revproxy.http2.guard import PREFACE, HeaderBlockGuard, ResetBudget
from revproxy.http2.heads import MalformedRequest, request_head

BASE = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test:8443"),
        (b":path", b"/p?q=1")]
LIMITS = Limits()


class RequestHeadTests(unittest.TestCase):
    def test_pseudo_headers_make_the_head(self):
        head = request_head(BASE + [(b"accept", b"*/*")], LIMITS, True)
        self.assertEqual((head.method, head.target, head.version, head.host),
                         (b"GET", b"/p?q=1", b"2", b"a.test:8443"))
        self.assertEqual(head.headers, ((b"accept", b"*/*"),))
        self.assertEqual((head.framing, head.keep_alive, head.upgrade), (NO_BODY, True, None))

    def test_body_framing_follows_content_length_and_end_stream(self):
        self.assertEqual(request_head(BASE, LIMITS, False).framing, CHUNKED)
        head = request_head(BASE + [(b"content-length", b"12")], LIMITS, False)
        self.assertEqual((head.framing, head.content_length), (LENGTH, 12))

    def test_host_field_stands_in_for_authority(self):
        fields = [f for f in BASE if f[0] != b":authority"] + [(b"host", b"b.test")]
        self.assertEqual(request_head(fields, LIMITS, True).host, b"b.test")

    def test_no_authority_and_no_host_is_400(self):
        fields = [f for f in BASE if f[0] != b":authority"]
        with self.assertRaises(ProtocolError) as caught:
            request_head(fields, LIMITS, True)
        self.assertEqual(caught.exception.status, 400)

    def test_malformed_requests(self):
        """Each of these breaks RFC 9113 §8.2-8.3 and costs its stream."""
        cases = {
            "upper-case name": BASE + [(b"Accept", b"x")],
            "connection field": BASE + [(b"connection", b"keep-alive")],
            "te gzip": BASE + [(b"te", b"gzip")],
            "pseudo after regular": [BASE[0], (b"accept", b"x")] + BASE[1:],
            "repeated pseudo": BASE + [(b":path", b"/again")],
            "unknown pseudo": BASE + [(b":protocol", b"websocket")],
            "no scheme": [f for f in BASE if f[0] != b":scheme"],
            "no path": [f for f in BASE if f[0] != b":path"],
            "relative path": BASE[:3] + [(b":path", b"p")],
            "newline in value": BASE + [(b"x", b"a\nb")],
            "NUL in value": BASE + [(b"x", b"a\x00b")],
            "leading space": BASE + [(b"x", b" a")],
            "authority/host differ": BASE + [(b"host", b"evil.test")],
            "userinfo": BASE[:2] + [(b":authority", b"u@a.test"), BASE[3]],
        }
        for label, fields in cases.items():
            with self.assertRaises(MalformedRequest, msg=label):
                request_head(fields, LIMITS, True)

    def test_te_trailers_is_allowed(self):
        self.assertEqual(request_head(BASE + [(b"te", b"trailers")], LIMITS, True).method, b"GET")

    def test_limits_answer_like_http1(self):
        for fields, status in (
            (BASE[:3] + [(b":path", b"/" + b"a" * 9000)], 414),
            (BASE + [(b"x-%d" % i, b"v") for i in range(101)], 431),
            (BASE + [(b"x", b"v" * 40000)], 431),
            (BASE + [(b"content-length", b"1"), (b"content-length", b"1")], 400),
        ):
            with self.assertRaises(ProtocolError) as caught:
                request_head(fields, LIMITS, False)
            self.assertEqual(caught.exception.status, status)

    def test_connect_uses_authority_as_target(self):
        head = request_head([(b":method", b"CONNECT"), (b":authority", b"a.test:443")],
                            LIMITS, False)
        self.assertEqual((head.method, head.target), (b"CONNECT", b"a.test:443"))

    def test_expect_continue_only_with_a_body(self):
        fields = BASE + [(b"expect", b"100-continue")]
        self.assertTrue(request_head(fields, LIMITS, False).expect_continue)
        self.assertFalse(request_head(fields, LIMITS, True).expect_continue)


def _headers_frame(size, end_headers, sid=1):
    frame = HeadersFrame(sid)
    frame.data = b"\x00" * size
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


def _continuation(size, end_headers, sid=1):
    frame = ContinuationFrame(sid)
    frame.data = b"\x00" * size
    if end_headers:
        frame.flags.add("END_HEADERS")
    return frame.serialize()


class HeaderBlockGuardTests(unittest.TestCase):
    def test_normal_blocks_pass(self):
        guard = HeaderBlockGuard(2, 4096)
        stream = (PREFACE + _headers_frame(100, False) + _continuation(100, False)
                  + _continuation(100, True) + DataFrame(1, b"x" * 5000).serialize()
                  + _headers_frame(3000, True, 3))
        self.assertIsNone(guard.feed(stream))

    def test_too_many_continuations(self):
        guard = HeaderBlockGuard(2, 1 << 20)
        stream = PREFACE + _headers_frame(10, False) + _continuation(10, False) * 3
        self.assertIn("CONTINUATION", guard.feed(stream))

    def test_block_bytes(self):
        guard = HeaderBlockGuard(100, 1000)
        stream = PREFACE + _headers_frame(600, False) + _continuation(600, False)
        self.assertIn("over 1000 bytes", guard.feed(stream))

    def test_counts_restart_with_each_block(self):
        guard = HeaderBlockGuard(1, 1 << 20)
        block = _headers_frame(10, False) + _continuation(10, True)
        self.assertIsNone(guard.feed(PREFACE + block * 20))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=60), max_size=40))
    def test_any_split_gives_the_same_verdict(self, cuts):
        """The guard reads frame headers across any split of the byte stream."""
        stream = (PREFACE + _headers_frame(20, False) + _continuation(5, False)
                  + DataFrame(1, b"y" * 30).serialize() + _continuation(5, False) * 4)
        whole = HeaderBlockGuard(3, 1 << 20).feed(stream)
        self.assertIsNotNone(whole)
        guard, pos, verdict = HeaderBlockGuard(3, 1 << 20), 0, None
        for cut in cuts + [len(stream)]:
            piece = stream[pos:pos + cut]
            pos += len(piece)
            verdict = verdict or guard.feed(piece)
        if pos < len(stream):
            verdict = verdict or guard.feed(stream[pos:])
        self.assertEqual(verdict, whole)


class ResetBudgetTests(unittest.TestCase):
    def test_budget_per_sliding_minute(self):
        budget = ResetBudget(3, 60.0)
        self.assertEqual([budget.spend(t) for t in (0, 1, 2)], [True] * 3)
        self.assertFalse(budget.spend(3))
        budget = ResetBudget(3, 60.0)
        self.assertEqual([budget.spend(t) for t in (0, 30, 59, 61, 91)],
                         [True, True, True, True, True])


class ChooseTests(unittest.TestCase):
    def test_alpn_decides_on_tls(self):
        self.assertEqual(choose(b"h2", b"", False), "h2")
        self.assertEqual(choose(b"http/1.1", b"", True), "http/1.1")

    def test_cleartext_without_prior_knowledge_is_http1(self):
        self.assertEqual(choose(None, PREFACE, False), "http/1.1")

    def test_prior_knowledge_waits_for_the_whole_preface(self):
        self.assertIsNone(choose(None, PREFACE[:10], True))
        self.assertEqual(choose(None, PREFACE + b"x", True), "h2")
        self.assertEqual(choose(None, b"GET / HTTP/1.1\r\n", True), "http/1.1")
        self.assertEqual(choose(None, b"PRI * HTTP/1.1", True), "http/1.1")
