"""The engine's fast path for fresh hits agrees with the full RFC 9111 evaluation."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from twisted.internet.task import Clock

from revproxy.cache import freshness
from revproxy.cache.dates import format_http_date
from revproxy.cache.engine import HttpCache
from revproxy.cache.entry import CacheEntry
from revproxy.config.model import Cache

_DIRECTIVES = st.sampled_from([
    b"max-age=60", b"max-age=0", b"s-maxage=30", b"no-cache", b"public, max-age=10",
    b"max-age=60, must-revalidate", b"max-age=abc", b"private", b"",
])


@settings(max_examples=200, deadline=None)
@given(cc=_DIRECTIVES, age=st.one_of(st.none(), st.integers(0, 100)),
       date_skew=st.integers(-50, 50), delay=st.floats(0, 5), wait=st.floats(0, 200),
       last_modified_ago=st.one_of(st.none(), st.integers(0, 10000)))
def test_fast_decision_matches_evaluate(cc, age, date_skew, delay, wait, last_modified_ago):
    """For requests without directives, decide() says fresh exactly when evaluate() does,
    with the same age (to the millisecond)."""
    request_time = 1000000.0
    response_time = request_time + delay
    headers = [(b"date", format_http_date(response_time + date_skew))]
    if cc:
        headers.append((b"cache-control", cc))
    if age is not None:
        headers.append((b"age", b"%d" % age))
    if last_modified_ago is not None:
        headers.append((b"last-modified", format_http_date(response_time - last_modified_ago)))
    entry = CacheEntry(b"k", 200, b"OK", headers, b"x", request_time, response_time,
                       response_time)
    cache = HttpCache(store=None, settings=Cache(store="memory"), clock=Clock())
    now = response_time + wait
    for _ in range(2):  # the second call uses the memoised facts
        fast = cache.decide(entry, [(b"host", b"a")], now)
        full = freshness.evaluate(headers, 200, request_time, response_time,
                                  [(b"host", b"a")], now)
        assert (fast.kind == "fresh") == (full.kind == "fresh")
        if fast.kind == "fresh":
            assert abs(fast.age - full.age) < 1e-3
            assert abs(fast.ttl - full.ttl) < 1e-3
