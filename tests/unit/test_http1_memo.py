"""The parsed-head memo: bounded in bytes, only small heads, and the shared heads immutable."""

from __future__ import annotations

import copy
import gc
import pickle
import platform

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.http1 import parser as memo
from revproxy.http1.heads import Limits, RequestHead, ResponseHead
from revproxy.http1.parser import RequestParser, ResponseParser


@pytest.fixture(autouse=True)
def _fresh_memo():
    memo.clear_memo()
    yield
    memo.clear_memo()


def request_bytes(i: int, fields: int = 2, value_len: int = 8) -> bytes:
    return (b"GET /p%d HTTP/1.1\r\nHost: a.test\r\n" % i
            + b"".join(b"X-F%d: %s\r\n" % (j, b"v" * value_len) for j in range(fields))
            + b"\r\n")


def parse_request(data: bytes) -> RequestHead:
    parser = RequestParser(Limits(max_header_count=1000))
    parser.feed(data)
    head = parser.next_event()
    assert isinstance(head, RequestHead)
    return head


def parse_response(data: bytes, method: bytes = b"GET") -> ResponseHead:
    parser = ResponseParser(Limits())
    parser.expect(method)
    parser.feed(data)
    head = parser.next_event()
    assert isinstance(head, ResponseHead)
    return head


# -- bounds ----------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 80)), min_size=1, max_size=60),
       st.integers(0, 10 ** 6))
def test_memo_byte_bound_holds_under_many_distinct_heads(shapes, seed):
    """Whatever mix of distinct heads arrives, the memo's estimated bytes stay within
    MEMO_BYTES_MAX and its count within the entry limit."""
    memo.clear_memo()
    for n, (fields, value_len) in enumerate(shapes * 40):  # enough to pass the bound
        parse_request(request_bytes(seed + n, fields, value_len))
        count, held = memo.memo_stats()
        assert held <= memo.MEMO_BYTES_MAX
        assert count <= memo._HEADS_MAX


def test_memo_fills_to_its_bound_with_heads_near_the_size_limit():
    """5000 distinct heads just under MEMO_HEAD_MAX: the bound holds, and the memo still
    remembers (it starts afresh when full rather than stopping)."""
    block = request_bytes(0, 30, 50)
    assert len(block) <= memo.MEMO_HEAD_MAX
    peak = 0
    for i in range(5000):
        parse_request(request_bytes(i, 30, 50))
        peak = max(peak, memo.memo_stats()[1])
    assert memo.MEMO_BYTES_MAX // 2 < peak <= memo.MEMO_BYTES_MAX
    assert memo.memo_stats()[0] > 0


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="tracemalloc")
def test_memo_estimate_is_not_below_what_the_heads_really_hold():
    """The byte estimate is conservative: tracemalloc sees no more than it counts."""
    import tracemalloc

    blocks = [request_bytes(i, fields, 20) for i in range(150) for fields in (0, 8)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for block in blocks:
            parse_request(block)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    count, estimate = memo.memo_stats()
    assert count == len(blocks)
    assert held <= estimate


def test_big_heads_are_not_memoised():
    """A head over MEMO_HEAD_MAX is parsed afresh each time and never stored."""
    block = request_bytes(1, 40, 60)
    assert len(block) > memo.MEMO_HEAD_MAX
    first, second = parse_request(block), parse_request(block)
    assert first == second
    assert first is not second
    assert memo.memo_stats() == (0, 0)


def test_small_heads_are_shared():
    """A small head is parsed once and the same object handed out again (the speed-up)."""
    block = request_bytes(2)
    assert parse_request(block) is parse_request(block)
    assert memo.memo_stats()[0] == 1


# -- immutability ----------------------------------------------------------------------------
def test_memoised_request_head_cannot_be_mutated():
    """Attribute assignment and deletion fail; headers are a tuple; the next request with
    the same bytes gets the head unchanged."""
    block = request_bytes(3)
    head = parse_request(block)
    with pytest.raises(AttributeError, match="immutable"):
        head.target = b"/evil"
    with pytest.raises(AttributeError):
        head.keep_alive = False
    with pytest.raises(AttributeError):
        del head.host
    assert isinstance(head.headers, tuple)
    with pytest.raises(AttributeError):
        head.headers.append((b"x-evil", b"1"))  # type: ignore[attr-defined]
    again = parse_request(block)
    assert again is head
    assert (again.target, again.keep_alive, again.host) == (b"/p3", True, b"a.test")
    assert (b"x-evil", b"1") not in again.headers


def test_memoised_response_head_cannot_be_mutated():
    """Response heads are immutable too."""
    block = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"
    head = parse_response(block)
    with pytest.raises(AttributeError):
        head.status = 500
    with pytest.raises(AttributeError):
        head.headers = ()
    assert parse_response(block) is head
    assert head.status == 200


def test_replace_gives_a_changed_copy_and_leaves_the_shared_head_alone():
    """replace() is the way to derive a head: the original (and the memo) are unchanged."""
    head = parse_request(b"GET /r HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n\r\n")
    whole = head.replace(headers=[h for h in head.headers if h[0] != b"range"])
    assert whole.headers == ((b"host", b"a"),)
    assert isinstance(whole.headers, tuple)
    assert (whole.method, whole.target, whole.host) == (head.method, head.target, head.host)
    assert (b"range", b"bytes=0-1") in head.headers
    with pytest.raises(TypeError):
        head.replace(colour=b"red")
    with pytest.raises(AttributeError):
        whole.target = b"/x"


def test_copy_and_pickle_keep_heads_equal():
    """copy, deepcopy and pickle still work on immutable heads."""
    head = parse_request(request_bytes(4))
    assert copy.copy(head) == head
    assert copy.deepcopy(head) == head
    restored = pickle.loads(pickle.dumps(head))
    assert restored == head
    with pytest.raises(AttributeError):
        restored.method = b"POST"


def test_constructed_heads_are_immutable_with_tuple_headers():
    """Heads built directly (tests, plugins) get the same guarantees."""
    head = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a")])
    assert head.headers == ((b"host", b"a"),)
    with pytest.raises(AttributeError):
        head.method = b"PUT"
