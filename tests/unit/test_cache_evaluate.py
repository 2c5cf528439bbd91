"""Reuse decisions (RFC 9111 §4.2, §4.2.4, §5.2.1, §5.2.2, §5.4) and RFC 5861 stale serving."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.dates import format_http_date
from revproxy.cache.freshness import (
    KINDS, evaluate, request_no_cache, stale_if_error, stale_while_revalidate, within_sie,
    within_swr,
)

T0 = 1_700_000_000.0


def hdrs(*lines):
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


def stored(cc=None, *more):
    lines = ["date: " + format_http_date(T0).decode()]
    if cc is not None:
        lines.append("cache-control: " + cc)
    return hdrs(*(lines + list(more)))


def ev(cc, now, *request, shared=True, status=200, more=()):
    return evaluate(stored(cc, *more), status, T0, T0, hdrs(*request), now, shared=shared)


def test_fresh_response_is_served():
    """§4.2: fresh while freshness_lifetime > current_age; ttl = lifetime - age."""
    d = ev("max-age=100", T0 + 40)
    assert d.kind == "fresh" and d.age == 40 and d.ttl == 60 and d.usable


def test_stale_response_is_revalidated():
    """§4.2: once age >= lifetime the response is stale and must be validated."""
    d = ev("max-age=100", T0 + 100)
    assert d.kind == "revalidate" and d.ttl == 0 and not d.usable


def test_request_no_cache_forces_revalidation():
    """§5.2.1.4: request no-cache -> not served without validation, even when fresh."""
    d = ev("max-age=100", T0 + 1, "cache-control: no-cache")
    assert d.kind == "revalidate" and d.by_request


def test_pragma_no_cache_without_cache_control():
    """§5.4: Pragma: no-cache acts as no-cache only when the request has no Cache-Control."""
    assert ev("max-age=100", T0 + 1, "pragma: no-cache").kind == "revalidate"
    assert ev("max-age=100", T0 + 1, "pragma: no-cache", "cache-control: max-stale").kind == "fresh"
    assert request_no_cache(hdrs("pragma: x, No-Cache"))


def test_request_max_age():
    """§5.2.1.1: age > max-age -> validate; age == max-age still acceptable."""
    assert ev("max-age=100", T0 + 30, "cache-control: max-age=30").kind == "fresh"
    d = ev("max-age=100", T0 + 31, "cache-control: max-age=30")
    assert d.kind == "revalidate" and d.by_request


def test_request_max_age_zero_and_invalid():
    """§5.2.1.1: max-age=0 always validates; an invalid one reads as 0 (documented)."""
    assert ev("max-age=100", T0 + 1, "cache-control: max-age=0").kind == "revalidate"
    assert ev("max-age=100", T0 + 1, "cache-control: max-age=x").kind == "revalidate"


def test_request_min_fresh():
    """§5.2.1.3: the response must stay fresh for at least min-fresh more seconds."""
    assert ev("max-age=100", T0 + 50, "cache-control: min-fresh=50").kind == "fresh"
    assert ev("max-age=100", T0 + 51, "cache-control: min-fresh=50").kind == "revalidate"


def test_request_max_stale_with_and_without_value():
    """§5.2.1.2: max-stale accepts staleness up to N seconds, or any without a value."""
    assert ev("max-age=100", T0 + 150, "cache-control: max-stale=50").kind == "stale-ok"
    assert ev("max-age=100", T0 + 151, "cache-control: max-stale=50").kind == "revalidate"
    assert ev("max-age=100", T0 + 10 ** 6, "cache-control: max-stale").kind == "stale-ok"
    assert ev("max-age=100", T0 + 101, "cache-control: max-stale=x").kind == "revalidate"


def test_must_revalidate_beats_max_stale():
    """§5.2.2.2: must-revalidate: never served stale, whatever the client accepts."""
    d = ev("max-age=100, must-revalidate", T0 + 150, "cache-control: max-stale")
    assert d.kind == "must-revalidate"


def test_proxy_revalidate_and_s_maxage_bind_shared_caches_only():
    """§5.2.2.8 / §5.2.2.10: proxy-revalidate and s-maxage forbid stale in shared caches."""
    for cc in ("max-age=100, proxy-revalidate", "s-maxage=100, max-age=100"):
        assert ev(cc, T0 + 150, "cache-control: max-stale").kind == "must-revalidate"
        assert ev(cc, T0 + 150, "cache-control: max-stale", shared=False).kind == "stale-ok"


def test_response_no_cache_always_validates():
    """§5.2.2.4: a no-cache response is never reused unvalidated (a malformed qualified
    member reads as unqualified: the restrictive reading)."""
    for cc in ("no-cache, max-age=100", 'no-cache="a"x, max-age=100'):
        d = ev(cc, T0 + 1)
        assert d.kind == "must-revalidate" and d.ttl > 0


def test_qualified_no_cache_leaves_the_response_reusable():
    """§5.2.2.4: no-cache="field" restricts only the listed fields (left out of hits)."""
    d = ev('no-cache="set-cookie", max-age=100', T0 + 1)
    assert d.kind == "fresh"
    assert ev('no-cache="set-cookie", max-age=100', T0 + 150, "cache-control: max-stale").kind \
        == "stale-ok"


def test_request_no_store_bypasses_the_cache():
    """§5.2.1.5: request no-store -> bypass (documented: not even served from cache)."""
    assert ev("max-age=100", T0 + 1, "cache-control: no-store").kind == "bypass"


def test_only_if_cached_is_flagged():
    """§5.2.1.7: only-if-cached: the caller answers 504 unless the decision is usable."""
    d = ev("max-age=100", T0 + 200, "cache-control: only-if-cached")
    assert d.only_if_cached and not d.usable
    assert not ev("max-age=100", T0 + 1).only_if_cached


def test_heuristic_freshness_is_reported():
    """§4.2.2: a heuristically fresh response is fresh, with heuristic=True."""
    d = ev(None, T0 + 1, more=["last-modified: " + format_http_date(T0 - 1000).decode()])
    assert d.kind == "fresh" and d.heuristic and d.lifetime == 100


def test_invalid_max_age_is_stale():
    """§4.2.1: invalid freshness information -> stale."""
    assert ev("max-age=1.5", T0).kind == "revalidate"


# --- RFC 5861 --------------------------------------------------------------------------

def test_stale_while_revalidate_window():
    """RFC 5861 §3: a stale response may be served during the window while revalidating."""
    h = stored("max-age=100, stale-while-revalidate=50")
    inside = evaluate(h, 200, T0, T0, [], T0 + 150)
    outside = evaluate(h, 200, T0, T0, [], T0 + 151)
    assert stale_while_revalidate(h) == 50
    assert within_swr(inside, h) and not within_swr(outside, h)


def test_swr_is_not_used_when_the_request_forced_validation():
    """RFC 5861 §3 + RFC 9111 §5.2.1.4: a client's no-cache is not answered with stale."""
    h = stored("max-age=100, stale-while-revalidate=50")
    d = evaluate(h, 200, T0, T0, hdrs("cache-control: no-cache"), T0 + 120)
    assert not within_swr(d, h)


def test_swr_and_sie_yield_to_must_revalidate():
    """RFC 5861 §3-4 / RFC 9111 §4.2.4: directives forbidding stale override both windows."""
    for cc in ("max-age=1, must-revalidate", "max-age=1, no-cache", "s-maxage=1",
               "max-age=1, proxy-revalidate"):
        h = stored(cc + ", stale-while-revalidate=99, stale-if-error=99")
        d = evaluate(h, 200, T0, T0, [], T0 + 5)
        assert stale_while_revalidate(h) == 0 and stale_if_error(h) == 0
        assert not within_swr(d, h) and not within_sie(d, h)


def test_stale_if_error_from_response_or_request():
    """RFC 5861 §4: stale-if-error in the response or the request allows stale on error."""
    h = stored("max-age=100, stale-if-error=60")
    d = evaluate(h, 200, T0, T0, [], T0 + 160)
    assert within_sie(d, h)
    late = evaluate(h, 200, T0, T0, [], T0 + 161)
    assert not within_sie(late, h)
    assert within_sie(late, h, hdrs("cache-control: stale-if-error=100"))
    plain = stored("max-age=100")
    assert not within_sie(evaluate(plain, 200, T0, T0, [], T0 + 101), plain)


def test_invalid_windows_count_as_absent():
    """RFC 5861: a non-delta-seconds window gives no stale serving."""
    h = stored("max-age=1, stale-while-revalidate=1.5, stale-if-error=x")
    assert stale_while_revalidate(h) == 0 and stale_if_error(h) == 0


def test_bypass_never_replaces_an_error():
    """within_sie: a bypassed request never gets the stored response."""
    h = stored("max-age=100, stale-if-error=60")
    d = evaluate(h, 200, T0, T0, hdrs("cache-control: no-store"), T0 + 1)
    assert not within_sie(d, h)


# --- properties -----------------------------------------------------------------------

_resp_directive = st.sampled_from([
    "max-age=100", "s-maxage=50", "must-revalidate", "proxy-revalidate", "public",
    "stale-while-revalidate=30", "stale-if-error=30", "max-age=bad", "no-cache"])
_req_directive = st.sampled_from([
    "max-age=60", "min-fresh=20", "max-stale", "max-stale=30", "no-cache", "only-if-cached",
    "no-store", "stale-if-error=10"])


@settings(max_examples=200)
@given(st.lists(_resp_directive, max_size=3), st.lists(_req_directive, max_size=2),
       st.floats(0, 500), st.floats(0, 500), st.booleans(), st.integers(0, 300))
def test_freshness_is_monotonic_in_time(resp, req, t1, dt, shared, age_header):
    """§4.2: as `now` grows, a response may go fresh -> stale, never back; ttl falls 1:1."""
    h = stored(", ".join(resp) if resp else None, "age: %d" % age_header)
    request = hdrs("cache-control: " + ", ".join(req)) if req else []
    first = evaluate(h, 200, T0, T0, request, T0 + t1, shared=shared)
    second = evaluate(h, 200, T0, T0, request, T0 + t1 + dt, shared=shared)
    assert first.kind in KINDS and second.kind in KINDS
    assert first.age >= 0 and abs((second.age - first.age) - dt) < 1e-6
    assert abs((first.ttl - second.ttl) - dt) < 1e-6
    if second.kind == "fresh":
        assert first.kind == "fresh"
    if not first.usable:
        assert not second.usable or second.kind == "stale-ok" and first.kind == "revalidate"


@settings(max_examples=200)
@given(st.lists(_resp_directive, max_size=3), st.floats(0, 500))
def test_fresh_means_ttl_positive(resp, t):
    """§4.2: kind "fresh" exactly when the response is fresh and nothing forces validation."""
    h = stored(", ".join(resp) if resp else None)
    d = evaluate(h, 200, T0, T0, [], T0 + t)
    forced = "no-cache" in resp
    assert (d.kind == "fresh") == (d.ttl > 0 and not forced)
