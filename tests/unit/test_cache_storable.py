"""May a response be stored? (RFC 9111 §3, §3.5, §5.2.2.3, §4.1)"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.freshness import HEURISTIC_STATUSES, UNDERSTOOD_STATUSES, storable


def hdrs(*lines):
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


FRESH = hdrs("cache-control: max-age=60")


def ok(*lines, method=b"GET", status=200, request=(), **kw):
    return storable(method, status, hdrs(*request), hdrs(*lines), **kw)


def test_get_with_max_age_is_stored():
    """§3: explicit freshness (max-age) makes a GET response storable."""
    assert ok("cache-control: max-age=60")[0]


def test_only_get_responses_are_stored():
    """§3 'method understood': we store GET only; HEAD is served from a stored GET."""
    for method in (b"HEAD", b"POST", b"PUT", b"OPTIONS", b"FOO"):
        stored, reason = ok("cache-control: max-age=60", method=method)
        assert not stored and "GET" in reason


def test_non_final_status_is_not_stored():
    """§3: the status must be final."""
    for status in (100, 103, 199):
        assert not ok("cache-control: max-age=60", status=status)[0]


def test_partial_and_not_modified_are_never_stored():
    """§3: 206 and 304 only when understood; we do not implement partial content."""
    for status in (206, 304):
        assert not ok("cache-control: max-age=60, public", status=status)[0]


def test_response_no_store():
    """§5.2.2.5: no-store in the response forbids storing."""
    stored, reason = ok("cache-control: max-age=60, no-store")
    assert not stored and "no-store" in reason


def test_request_no_store():
    """§5.2.1.5: no-store in the request forbids storing the response."""
    stored, reason = ok("cache-control: max-age=60", request=["cache-control: no-store"])
    assert not stored and "request" in reason


def test_must_understand_overrides_no_store_for_understood_status():
    """§5.2.2.3: with must-understand and an understood status, no-store is ignored."""
    assert ok("cache-control: must-understand, no-store, max-age=60")[0]
    assert 200 in UNDERSTOOD_STATUSES


def test_must_understand_with_unknown_status_is_not_stored():
    """§5.2.2.3: must-understand with a status we do not implement: not stored."""
    stored, reason = ok("cache-control: must-understand, max-age=60", status=299)
    assert not stored and "must-understand" in reason


def test_unknown_status_with_explicit_freshness_is_stored():
    """§3: an unrecognised final status is storable with explicit freshness."""
    assert ok("cache-control: max-age=60", status=299)[0]


def test_private_is_not_stored_by_a_shared_cache():
    """§5.2.2.7: unqualified private (or a malformed qualified one) keeps a shared cache from
    storing; a qualified private="field" does not (the field is left out when stored)."""
    for cc in ("private", 'private="set-cookie', "private=,"):
        assert not ok("cache-control: max-age=60, " + cc)[0]
    assert ok('cache-control: max-age=60, private="set-cookie"')[0]
    assert not ok('cache-control: private="set-cookie"')[0]  # no freshness of its own


def test_private_is_stored_by_a_private_cache():
    """§3: a private directive alone suffices for a private cache."""
    assert ok("cache-control: private", shared=False)[0]


def test_authorization_needs_an_explicit_permission():
    """§3.5: a request with Authorization: stored only with public, s-maxage or must-revalidate."""
    auth = ["authorization: Basic eDp5"]
    assert not ok("cache-control: max-age=60", request=auth)[0]
    for cc in ("public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"):
        assert ok("cache-control: " + cc, request=auth)[0], cc


def test_authorization_is_irrelevant_to_a_private_cache():
    """§3.5 applies to shared caches only."""
    assert ok("cache-control: max-age=60", request=["authorization: x"], shared=False)[0]


def test_expires_alone_allows_storing():
    """§3: an Expires field makes a response storable."""
    assert ok("expires: Sun, 06 Nov 2094 08:49:37 GMT", status=500)[0]


def test_s_maxage_allows_storing_in_shared_cache_only():
    """§3: s-maxage makes it storable for a shared cache; not for a private cache."""
    assert ok("cache-control: s-maxage=60", status=500)[0]
    assert not ok("cache-control: s-maxage=60", status=500, shared=False)[0]


def test_public_allows_storing_any_status():
    """§3 / §5.2.2.9: public makes a response storable."""
    assert ok("cache-control: public", status=302)[0]


def test_heuristic_status_with_validator_is_stored():
    """§3 / §4.2.2: a heuristically cacheable status is storable; we want a validator."""
    assert ok("last-modified: Sun, 06 Nov 1994 08:49:37 GMT")[0]
    assert ok('etag: "x"', status=404)[0]


def test_response_saying_nothing_is_not_stored():
    """Policy: no explicit freshness and no validator -> not stored (always stale, useless)."""
    stored, reason = ok()
    assert not stored and "validator" in reason


def test_non_heuristic_status_without_freshness_is_not_stored():
    """§3: 302/500 without explicit freshness are not storable even with a validator."""
    for status in (302, 500, 503):
        assert not ok('etag: "x"', status=status)[0]


def test_heuristic_storing_can_be_disabled():
    """allow_heuristic=False: only explicit freshness allows storing."""
    assert not ok("last-modified: Sun, 06 Nov 1994 08:49:37 GMT", allow_heuristic=False)[0]


def test_set_cookie_needs_public_or_s_maxage():
    """§7.3 policy: Set-Cookie is stored only with public/s-maxage (or allow_set_cookie)."""
    cookie = "set-cookie: id=1"
    assert not ok("cache-control: max-age=60", cookie)[0]
    assert not ok("last-modified: Sun, 06 Nov 1994 08:49:37 GMT", cookie)[0]
    assert ok("cache-control: public, max-age=60", cookie)[0]
    assert ok("cache-control: s-maxage=60", cookie)[0]
    assert ok("cache-control: max-age=60", cookie, allow_set_cookie=True)[0]


def test_vary_star_is_not_stored():
    """§4.1: Vary: * never matches a later request, so storing it is pointless."""
    stored, reason = ok("cache-control: max-age=60", "vary: accept, *")
    assert not stored and "Vary" in reason


def test_heuristic_statuses_are_the_rfc_list():
    """RFC 9110 §15.1: the heuristically cacheable statuses."""
    assert HEURISTIC_STATUSES == {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}


_directive = st.sampled_from(["max-age=60", "s-maxage=5", "public", "private", "no-store",
                              "no-cache", "must-revalidate", "must-understand", "max-age=x",
                              'private="a"', "proxy-revalidate"])


@settings(max_examples=200)
@given(st.lists(_directive, max_size=4), st.sampled_from([200, 204, 302, 404, 500, 299]),
       st.booleans(), st.booleans(), st.booleans())
def test_refusals_hold_for_every_combination(directives, status, auth, cookie, shared):
    """The MUST NOTs of §3 hold whatever else the response says."""
    lines = ["cache-control: " + ", ".join(directives)] if directives else []
    if cookie:
        lines.append("set-cookie: a=b")
    request = ["authorization: x"] if auth else []
    stored, reason = ok(*lines, status=status, request=request, shared=shared)
    assert isinstance(reason, str) and reason
    if "no-store" in directives and "must-understand" not in directives:
        assert not stored
    if "must-understand" in directives and status not in UNDERSTOOD_STATUSES:
        assert not stored
    if shared and "private" in directives:
        assert not stored
    if shared and auth and not ({"public", "s-maxage=5", "must-revalidate"} & set(directives)):
        assert not stored
