"""Validation (RFC 9111 §3.2, §4.3, §4.4; RFC 9110 §13.1, §13.2.2)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.validation import (
    client_conditional, invalidation_targets, parse_entity_tags, revalidation_headers,
    select_for_update, update_stored_headers,
)

LM = b"Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = b"Sat, 05 Nov 1994 08:49:37 GMT"
LATER = b"Mon, 07 Nov 1994 08:49:37 GMT"


def hdrs(*lines):
    out = []
    for line in lines:
        name, _, value = line.partition(b":")
        out.append((name.strip().lower(), value.strip()))
    return out


# --- §4.3.1 -------------------------------------------------------------------------------

def test_revalidation_sends_etag_and_last_modified():
    """§4.3.1: MUST send the stored entity tag; SHOULD send Last-Modified as If-Modified-Since."""
    out = revalidation_headers(hdrs(b'etag: W/"a"', b"last-modified: " + LM))
    assert out == [(b"if-none-match", b'W/"a"'), (b"if-modified-since", LM)]


def test_revalidation_without_validators_is_empty():
    """§4.3.1: nothing to send when the stored response has no validator."""
    assert revalidation_headers(hdrs(b"content-type: text/plain")) == []


def test_invalid_last_modified_is_not_sent():
    """RFC 9110 §13.1.3: an invalid date would be ignored; we do not send it."""
    assert revalidation_headers(hdrs(b"last-modified: yesterday")) == []


def test_several_variants_send_all_etags_and_no_date():
    """§4.3.1/§4.3.2: validating several stored responses: all their ETags, no IMS."""
    out = revalidation_headers(hdrs(b'etag: "a"', b"last-modified: " + LM),
                               [hdrs(b'etag: "b"'), hdrs(b'etag: "a"')])
    assert out == [(b"if-none-match", b'"a", "b"')]


# --- §3.2 ---------------------------------------------------------------------------------

def test_update_replaces_same_named_fields_in_place():
    """§3.2: each field of the 304 replaces the stored ones of that name; others stay."""
    old = hdrs(b"date: 1", b"cache-control: max-age=1", b"x-a: 1", b"x-a: 2", b"etag: \"e\"")
    new = hdrs(b"date: 2", b"x-a: 3", b"x-new: n")
    assert update_stored_headers(old, new) == hdrs(
        b"date: 2", b"cache-control: max-age=1", b"x-a: 3", b'etag: "e"', b"x-new: n")


def test_update_never_touches_content_length_or_hop_by_hop():
    """§3.2: MUST NOT update Content-Length; §3.1: hop-by-hop, Connection-named and proxy
    authentication fields are not stored; Content-Range is skipped (§3.2 MAY)."""
    old = hdrs(b"content-length: 10", b"x-b: old", b"content-type: text/plain")
    new = hdrs(b"content-length: 0", b"connection: x-b, close", b"x-b: new",
               b"transfer-encoding: chunked", b"keep-alive: 5", b"proxy-authenticate: Basic",
               b"content-range: bytes 0-1/2", b"content-type: text/html")
    assert update_stored_headers(old, new) == hdrs(
        b"content-length: 10", b"x-b: old", b"content-type: text/html")


# --- §4.3.4 -------------------------------------------------------------------------------

def test_strong_etag_selects_every_match():
    """§4.3.4: all stored responses with the 304's strong validator are updated."""
    stored = [hdrs(b'etag: "a"'), hdrs(b'etag: "b"'), hdrs(b'etag: "a"')]
    assert select_for_update(stored, hdrs(b'etag: "a"')) == [0, 2]
    assert select_for_update(stored, hdrs(b'etag: "z"')) == []


def test_strong_etag_does_not_match_weak_stored_tag():
    """§4.3.4 / RFC 9110 §8.8.3.2: a strong validator selects only strongly equal tags."""
    assert select_for_update([hdrs(b'etag: W/"a"')], hdrs(b'etag: "a"')) == []


def test_weak_validator_selects_the_most_recent_match():
    """§4.3.4: a weak validator selects the newest matching stored response."""
    stored = [hdrs(b'etag: "a"'), hdrs(b'etag: W/"a"'), hdrs(b'etag: "b"')]
    assert select_for_update(stored, hdrs(b'etag: W/"a"')) == [1]


def test_last_modified_selects_the_most_recent_match():
    """§4.3.4: Last-Modified (a weak validator here) selects the newest equal one."""
    stored = [hdrs(b"last-modified: " + LM), hdrs(b"last-modified: " + LM),
              hdrs(b"last-modified: " + LATER)]
    assert select_for_update(stored, hdrs(b"last-modified: " + LM)) == [1]


def test_no_validator_updates_a_lone_validatorless_response():
    """§4.3.4: no validator anywhere and a single stored response -> that one."""
    assert select_for_update([hdrs(b"x: 1")], hdrs(b"date: " + LM)) == [0]
    assert select_for_update([hdrs(b"x: 1"), hdrs(b"x: 2")], hdrs()) == []
    assert select_for_update([hdrs(b'etag: "a"')], hdrs()) == []


# --- client conditionals -----------------------------------------------------------------

STORED = hdrs(b'etag: "v1"', b"last-modified: " + LM, b"date: " + LATER)


def cond(*request, method=b"GET", stored=STORED):
    return client_conditional(hdrs(*request), stored, method)


def test_if_none_match_uses_weak_comparison():
    """RFC 9110 §13.1.2: If-None-Match matches weakly; a match answers 304 to GET/HEAD."""
    assert cond(b'if-none-match: W/"v1"') == 304
    assert cond(b'if-none-match: "x", "v1"', method=b"HEAD") == 304
    assert cond(b'if-none-match: "x"') is None
    assert cond(b"if-none-match: *") == 304


def test_if_none_match_overrides_if_modified_since():
    """RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present."""
    assert cond(b'if-none-match: "x"', b"if-modified-since: " + LATER) is None


def test_if_modified_since():
    """RFC 9110 §13.1.3: 304 when Last-Modified <= the date; invalid dates are ignored."""
    assert cond(b"if-modified-since: " + LM) == 304
    assert cond(b"if-modified-since: " + EARLIER) is None
    assert cond(b"if-modified-since: yesterday") is None
    assert cond(b"if-modified-since: " + LATER, b"if-modified-since: " + LATER) is None


def test_if_modified_since_falls_back_to_date():
    """RFC 9111 §4.3.2: without Last-Modified the stored Date is compared."""
    dated = hdrs(b"date: " + LM)
    assert cond(b"if-modified-since: " + LM, stored=dated) == 304
    assert cond(b"if-modified-since: " + EARLIER, stored=dated) is None
    assert client_conditional(hdrs(b"if-modified-since: " + LM), [], b"GET",
                              response_time=0.0) == 304


def test_if_match_uses_strong_comparison():
    """RFC 9110 §13.1.1: If-Match fails (412) unless a tag strongly matches; * matches."""
    assert cond(b'if-match: "v1"') is None
    assert cond(b'if-match: W/"v1"') == 412
    assert cond(b'if-match: "x"') == 412
    assert cond(b"if-match: *") is None
    assert cond(b'if-match: "v1"', stored=hdrs(b'etag: W/"v1"')) == 412


def test_if_unmodified_since():
    """RFC 9110 §13.1.4: 412 when modified after the date; ignored when If-Match is present."""
    assert cond(b"if-unmodified-since: " + EARLIER) == 412
    assert cond(b"if-unmodified-since: " + LM) is None
    assert cond(b'if-match: "v1"', b"if-unmodified-since: " + EARLIER) is None
    assert cond(b"if-unmodified-since: " + EARLIER, stored=hdrs(b'etag: "v1"')) is None


def test_precondition_order():
    """RFC 9110 §13.2.2: If-Match is evaluated before If-None-Match."""
    assert cond(b'if-match: "x"', b'if-none-match: "v1"') == 412


def test_methods_a_cache_cannot_answer_are_not_evaluated():
    """RFC 9111 §4.3.2: conditionals on requests not answerable from cache are left alone."""
    assert cond(b'if-none-match: "v1"', method=b"POST") is None


def test_entity_tag_list_parsing():
    """RFC 9110 §8.8.3: a list of optionally weak quoted tags."""
    assert parse_entity_tags(b'"a", W/"b" ,"c,d"') == [(False, b"a"), (True, b"b"),
                                                       (False, b"c,d")]


# --- §4.4 ---------------------------------------------------------------------------------

URI = b"http://example.com/a/b?q=1"


def test_unsafe_success_invalidates_uri_location_and_content_location():
    """§4.4: the target URI plus same-origin Location / Content-Location (resolved)."""
    got = invalidation_targets(b"POST", 201, URI, hdrs(b"location: c", b"content-location: /d"))
    assert got == [URI, b"http://example.com/a/c", b"http://example.com/d"]


def test_other_origins_are_not_invalidated():
    """§4.4: MUST NOT invalidate a URI of another origin (scheme, host or port)."""
    for loc in (b"http://other.example/x", b"https://example.com/x", b"http://example.com:81/x"):
        assert invalidation_targets(b"PUT", 200, URI, hdrs(b"location: " + loc)) == [URI]
    assert invalidation_targets(b"PUT", 200, URI, hdrs(b"location: http://EXAMPLE.com:80/x")) == [
        URI, b"http://EXAMPLE.com:80/x"]


def test_safe_methods_and_errors_invalidate_nothing():
    """§4.4: only unsafe methods (unknown ones included) with a 2xx/3xx invalidate."""
    assert invalidation_targets(b"GET", 200, URI, []) == []
    assert invalidation_targets(b"HEAD", 200, URI, []) == []
    assert invalidation_targets(b"POST", 404, URI, []) == []
    assert invalidation_targets(b"POST", 500, URI, []) == []
    assert invalidation_targets(b"FOO", 302, URI, []) == [URI]
    assert invalidation_targets(b"DELETE", 204, URI, []) == [URI]
    assert invalidation_targets(b"M-SEARCH", 200, URI, []) == [URI]
    assert invalidation_targets(b"PROPFIND", 207, URI, []) == []


@settings(max_examples=200)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_invalidation_never_raises_on_junk(location, uri):
    """Junk Location values or URIs give a list starting with the target, never an error."""
    got = invalidation_targets(b"POST", 200, uri, [(b"location", location)])
    assert got[0] == uri


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from([b"if-match", b"if-none-match", b"if-modified-since",
                                           b"if-unmodified-since", b"etag"]),
                          st.binary(max_size=30)), max_size=4))
def test_conditionals_never_raise_on_junk(fields):
    """Any junk preconditions give 304, 412 or None."""
    assert client_conditional(fields, STORED, b"GET") in (None, 304, 412)
    assert client_conditional(fields, fields, b"HEAD") in (None, 304, 412)
