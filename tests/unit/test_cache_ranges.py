"""Range requests from a stored response (RFC 9110 §14, §13.1.5, §15.3.7, §15.5.17)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.cache.ranges import (
    MAX_RANGES, MAX_SPECS, MIN_GAP, UNSATISFIABLE, accept_ranges, if_range_allows,
    multipart_boundary, parse_range, range_response,
)

LM = b"Sun, 06 Nov 1994 08:49:37 GMT"
LM_RFC850 = b"Sunday, 06-Nov-94 08:49:37 GMT"
LM_PLUS_1 = b"Sun, 06 Nov 1994 08:49:38 GMT"
LATER = b"Mon, 07 Nov 1994 08:49:37 GMT"
BODY = bytes(range(256)) * 4  # 1024 bytes
STORED = [
    (b"content-type", b"application/octet-stream"),
    (b"content-length", b"1024"),
    (b"etag", b'"v1"'),
    (b"last-modified", LM),
    (b"date", LATER),
    (b"cache-control", b"max-age=60"),
]


def get(stored=STORED, body=BODY, method=b"GET", status=200, **fields):
    request = [(name.replace("_", "-").encode(), value) for name, value in fields.items()]
    return range_response(status, stored, body, request, method)


def field(headers, name):
    values = [value for key, value in headers if key == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def parse_multipart(content_type, body):
    """A tiny multipart/byteranges reader: [(part headers dict, data)]; checks the framing."""
    match = re.match(rb"multipart/byteranges; boundary=([!-~]+)\Z", content_type)
    assert match is not None, content_type
    delimiter = b"--" + match.group(1)
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2:-(len(delimiter) + 6)]
    parts = []
    for raw in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, sep, data = raw.partition(b"\r\n\r\n")
        assert sep
        headers = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b": ")
            assert colon
            headers[name.lower()] = value
        parts.append((headers, data))
    return parts


# --- parse_range: syntax (§14.1.1, §14.1.2) ------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (b"bytes=0-499", [(0, 499)]),            # §14.1.2 example: first 500 bytes
    (b"bytes=500-999", [(500, 999)]),        # second 500 bytes
    (b"bytes=-500", [(524, 1023)]),          # final 500 bytes (suffix-range)
    (b"bytes=9500-", UNSATISFIABLE),        # starts past the end
    (b"bytes=1000-", [(1000, 1023)]),        # open int-range to the end
    (b"bytes=0-0", [(0, 0)]),                # first byte only
    (b"bytes=-1", [(1023, 1023)]),           # last byte only
    (b"bytes=0-99999", [(0, 1023)]),         # last-pos clipped to length - 1
    (b"bytes=-5000", [(0, 1023)]),           # suffix longer than the body: whole body
    (b"bytes=1023-1023", [(1023, 1023)]),
    (b"bytes=1024-2000", UNSATISFIABLE),     # first-pos == length
    (b"bytes=-0", UNSATISFIABLE),            # zero suffix-length is never satisfiable
    (b"bytes=-0,2000-", UNSATISFIABLE),
    (b"bytes=2000-,0-1", [(0, 1)]),          # an unsatisfiable member is dropped
])
def test_parse_range_rfc_examples(value, expected):
    """§14.1.1/§14.1.2: int-range, open range and suffix-range resolve and clip to length."""
    assert parse_range(value, 1024) == expected


@pytest.mark.parametrize("value, expected", [
    (b"BYTES=0-1", [(0, 1)]),                # §14.1: range units are case-insensitive
    (b"bytes = 0-1", [(0, 1)]),
    (b"bytes= 0-1 ,\t 500-600 ", [(0, 1), (500, 600)]),
    (b"bytes=0 - 1", [(0, 1)]),
    (b"bytes=,0-1,,", [(0, 1)]),             # §5.6.1: empty list elements are skipped
    (b"bytes=0000-0001", [(0, 1)]),          # leading zeros are still 1*DIGIT
])
def test_parse_range_whitespace_and_empty_members(value, expected):
    """Optional whitespace, case and empty list members are tolerated."""
    assert parse_range(value, 1024) == expected


@pytest.mark.parametrize("value", [
    b"items=0-1",             # §14.2: an unknown unit is ignored
    b"bytes",                 # no "="
    b"bytes=",                # §14.1.1: 1#range-spec needs a member
    b"bytes=,",
    b"bytes=5-1",             # §14.1.1: last-pos < first-pos is invalid
    b"bytes=0-1,5-1",         # one invalid member invalidates the field
    b"bytes=-",
    b"bytes=a-b",
    b"bytes=0-1-2",
    b"bytes=1.5-2",
    b"bytes=0x10-",
    b"bytes=0-1;q=1",
    b"bytes=0-" + b"9" * 65,  # absurd numbers are refused rather than converted
])
def test_parse_range_invalid_is_ignored(value):
    """§14.2: an invalid Range is ignored (None -> full 200)."""
    assert parse_range(value, 1024) is None


def test_parse_range_huge_but_bounded_number_clips():
    """A last-pos far past the end (within the digit bound) means "to the end"."""
    assert parse_range(b"bytes=10-" + b"9" * 60, 1024) == [(10, 1023)]


def test_parse_range_empty_representation():
    """§14.1.1: with length 0 an int-range is unsatisfiable; a non-zero suffix is not, but no
    range can express it, so the Range is ignored."""
    assert parse_range(b"bytes=0-", 0) == UNSATISFIABLE
    assert parse_range(b"bytes=-0", 0) == UNSATISFIABLE
    assert parse_range(b"bytes=-10", 0) is None


# --- parse_range: abuse defence (§14.2 security note, §14.6 coalescing) ---------------------

def test_overlapping_ranges_are_coalesced():
    """§14.6: overlapping ranges MAY be coalesced; they are, into ascending order."""
    assert parse_range(b"bytes=500-700,0-10,600-900,5-20", 1024) == [(0, 20), (500, 900)]


def test_adjacent_and_small_gap_ranges_are_coalesced():
    """§14.6: ranges separated by a gap smaller than a part's overhead MAY be coalesced."""
    assert parse_range(b"bytes=0-9,10-19", 1024) == [(0, 19)]
    assert parse_range(b"bytes=0-9,%d-%d" % (10 + MIN_GAP, 20 + MIN_GAP), 1024) == \
        [(0, 20 + MIN_GAP)]
    far = 10 + MIN_GAP + 1
    assert parse_range(b"bytes=0-9,%d-%d" % (far, far), 1024) == [(0, 9), (far, far)]


def test_disjoint_ranges_keep_the_client_order():
    """§14.6: parts SHOULD follow the request order when nothing is coalesced."""
    assert parse_range(b"bytes=900-999,0-9,400-499", 1024) == [(900, 999), (0, 9), (400, 499)]


def test_many_tiny_overlapping_ranges_collapse_to_one():
    """§14.2: many small overlapping ranges (a DoS pattern) cost one range, not many parts."""
    value = b"bytes=" + b",".join(b"0-%d" % i for i in range(MAX_SPECS))
    assert parse_range(value, 1024) == [(0, MAX_SPECS - 1)]


def test_more_than_max_ranges_after_coalescing_is_ignored():
    """§14.2: too many distinct ranges -> the Range is ignored (200)."""
    step = MIN_GAP + 10
    allowed = b"bytes=" + b",".join(b"%d-%d" % (i * step, i * step) for i in range(MAX_RANGES))
    assert len(parse_range(allowed, 1 << 20)) == MAX_RANGES
    too_many = allowed + b",%d-%d" % (MAX_RANGES * step, MAX_RANGES * step)
    assert parse_range(too_many, 1 << 20) is None


def test_more_than_max_specs_is_ignored_unread():
    """Beyond MAX_SPECS members the field is ignored even if they would coalesce."""
    value = b"bytes=" + b",".join([b"0-1"] * (MAX_SPECS + 1))
    assert parse_range(value, 1024) is None


# --- if_range_allows (§13.1.5) -------------------------------------------------------------

@pytest.mark.parametrize("if_range, stored_etag, expected", [
    (None, b'"v1"', True),             # no If-Range: the Range applies
    (b'"v1"', b'"v1"', True),          # strong match
    (b' "v1" ', b'"v1"', True),
    (b'"v2"', b'"v1"', False),
    (b'W/"v1"', b'"v1"', False),       # a weak tag never matches (strong comparison)
    (b'"v1"', b'W/"v1"', False),       # nor does a weak stored tag
    (b'"v1"', None, False),            # nothing stored to compare with
    (b'"v1", "v2"', b'"v1"', False),   # If-Range holds one validator, not a list
    (b'"v1"x', b'"v1"', False),
    (b'"v1"', b'"v1" junk', False),
    (b"yesterday", b'"v1"', False),    # neither a tag nor a date
])
def test_if_range_entity_tags(if_range, stored_etag, expected):
    """§13.1.5: an entity-tag condition is true only on a strong match (§8.8.3.2)."""
    stored = [(b"etag", stored_etag)] if stored_etag is not None else []
    assert if_range_allows(if_range, stored) is expected


@pytest.mark.parametrize("if_range, last_modified, date, expected", [
    (LM, LM, LATER, True),          # exact match, Date well after Last-Modified
    (LM, LM, LM_PLUS_1, True),      # §8.8.2.2: at least one second is enough
    (LM, LM, LM, False),            # same second: Last-Modified is weak
    (LM, LM, None, False),          # no Date: cannot deduce strength
    (LM, LATER, LATER, False),      # not the stored Last-Modified
    (LATER, LM, LATER, False),      # a later date is not an exact match either
    (LM_RFC850, LM, LATER, True),   # same instant, other HTTP-date format
    (LM, None, LATER, False),       # no Last-Modified stored
    (LM, b"garbage", LATER, False),
])
def test_if_range_dates(if_range, last_modified, date, expected):
    """§13.1.5: a date condition needs an exact match with a strong Last-Modified (§8.8.2.2)."""
    stored = [(b"etag", b'"v1"')]
    if last_modified is not None:
        stored.append((b"last-modified", last_modified))
    if date is not None:
        stored.append((b"date", date))
    assert if_range_allows(if_range, stored) is expected


# --- range_response: when ranges apply (§14.2, §13.1.5) -------------------------------------

def test_single_range_206():
    """§15.3.7.1: one range -> 206 with Content-Range and the slice; other fields kept."""
    status, headers, body = get(range=b"bytes=10-19")
    assert status == 206
    assert body == BODY[10:20]
    assert field(headers, b"content-range") == b"bytes 10-19/1024"
    assert field(headers, b"content-length") is None  # framing is the caller's
    for name in (b"content-type", b"etag", b"last-modified", b"date", b"cache-control"):
        assert field(headers, name) == field(STORED, name)


def test_no_range_or_other_method_or_status_serves_200():
    """§14.2: only GET has range semantics; only a stored 200 holds the whole representation."""
    assert get() is None
    assert get(method=b"HEAD", range=b"bytes=0-1") is None
    assert get(method=b"POST", range=b"bytes=0-1") is None
    assert get(status=203, range=b"bytes=0-1") is None
    assert get(status=206, range=b"bytes=0-1") is None


def test_invalid_range_serves_200():
    """§14.2: an invalid Range is ignored."""
    assert get(range=b"bytes=9-1") is None
    assert get(range=b"pages=1-2") is None


def test_repeated_range_field_serves_200():
    """Range is a singleton: two field lines are invalid and ignored."""
    request = [(b"range", b"bytes=0-1"), (b"range", b"bytes=2-3")]
    assert range_response(200, STORED, BODY, request, b"GET") is None


def test_if_range_mismatch_serves_200_and_match_serves_206():
    """§13.1.5: a false range condition means the whole 200 is sent."""
    assert get(range=b"bytes=0-1", if_range=b'"old"') is None
    assert get(range=b"bytes=0-1", if_range=b'"v1"')[0] == 206
    assert get(range=b"bytes=0-1", if_range=LM)[0] == 206


def test_repeated_if_range_serves_200():
    """If-Range is a singleton: two lines cannot be evaluated, the condition is false."""
    request = [(b"range", b"bytes=0-1"), (b"if-range", b'"v1"'), (b"if-range", b'"v1"')]
    assert range_response(200, STORED, BODY, request, b"GET") is None


def test_unsatisfiable_416():
    """§15.5.17: 416 with Content-Range: bytes */length and an empty body."""
    status, headers, body = get(range=b"bytes=5000-")
    assert (status, body) == (416, b"")
    assert field(headers, b"content-range") == b"bytes */1024"
    assert field(headers, b"content-length") is None
    assert field(headers, b"content-type") is None  # describes a body not sent
    assert field(headers, b"etag") == b'"v1"'


def test_stored_content_range_is_replaced():
    """The stored Content-Range (if any) never survives next to the new one."""
    stored = STORED + [(b"content-range", b"bytes 0-1023/1024")]
    status, headers, _ = get(stored=stored, range=b"bytes=0-0")
    assert field(headers, b"content-range") == b"bytes 0-0/1024"


def test_encoded_single_range_keeps_coding_and_multi_range_serves_200():
    """A slice of encoded bytes keeps Content-Encoding; multipart with a coding is avoided."""
    stored = STORED + [(b"content-encoding", b"gzip")]
    status, headers, body = get(stored=stored, range=b"bytes=0-3")
    assert (status, body, field(headers, b"content-encoding")) == (206, BODY[:4], b"gzip")
    assert get(stored=stored, range=b"bytes=0-3,500-600") is None


# --- range_response: multipart/byteranges (§14.6) ------------------------------------------

def test_multipart_parts_equal_the_requested_slices():
    """§14.6: each part carries Content-Type, Content-Range and the slice, in request order."""
    status, headers, body = get(range=b"bytes=900-949,0-9,400-499")
    assert status == 206
    assert field(headers, b"content-range") is None
    assert field(headers, b"etag") == b'"v1"'
    parts = parse_multipart(field(headers, b"content-type"), body)
    assert [data for _, data in parts] == [BODY[900:950], BODY[0:10], BODY[400:500]]
    assert [h[b"content-range"] for h, _ in parts] == [
        b"bytes 900-949/1024", b"bytes 0-9/1024", b"bytes 400-499/1024"]
    assert all(h[b"content-type"] == b"application/octet-stream" for h, _ in parts)


def test_multipart_without_stored_content_type_omits_part_type():
    """§14.6: parts carry Content-Type only if the representation has one."""
    stored = [(name, value) for name, value in STORED if name != b"content-type"]
    status, headers, body = get(stored=stored, range=b"bytes=0-9,500-509")
    parts = parse_multipart(field(headers, b"content-type"), body)
    assert [sorted(h) for h, _ in parts] == [[b"content-range"], [b"content-range"]]


def test_coalesced_to_one_range_is_not_multipart():
    """§14.6: a server MUST NOT send multipart for a single (coalesced) range."""
    status, headers, body = get(range=b"bytes=0-9,5-20")
    assert (status, body) == (206, BODY[0:21])
    assert field(headers, b"content-type") == b"application/octet-stream"


def test_boundary_is_deterministic_and_avoids_the_body():
    """The boundary depends only on body and ranges, and is re-derived when the first
    candidate occurs in the text to avoid."""
    first = multipart_boundary(BODY, [(0, 1), (500, 501)])
    assert first == multipart_boundary(BODY, [(0, 1), (500, 501)])
    assert first != multipart_boundary(BODY, [(0, 1), (500, 502)])
    assert len(first) <= 70 and re.match(rb"[0-9A-Za-z-]+\Z", first)  # RFC 2046 §5.1.1
    assert multipart_boundary(BODY, [(0, 1)], avoid=multipart_boundary(BODY, [(0, 1)])) != \
        multipart_boundary(BODY, [(0, 1)])


# --- accept_ranges (§14.3) -----------------------------------------------------------------

def test_accept_ranges_added_when_absent_only():
    """§14.3: advertise bytes ranges; an origin's own Accept-Ranges is left alone."""
    assert accept_ranges([(b"etag", b'"a"')]) == [(b"etag", b'"a"'), (b"accept-ranges", b"bytes")]
    assert accept_ranges([(b"accept-ranges", b"none")]) == [(b"accept-ranges", b"none")]


# --- properties ------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.data())
def test_single_range_body_is_the_slice(body, data):
    """For any body and valid single range a-b the 206 body is body[a:b+1]."""
    first = data.draw(st.integers(0, len(body) - 1))
    last = data.draw(st.integers(first, len(body) + 50))
    result = get(stored=[], body=body, range=b"bytes=%d-%d" % (first, last))
    stop = min(last, len(body) - 1)
    assert result == (206, [(b"content-range", b"bytes %d-%d/%d" % (first, stop, len(body)))],
                      body[first:stop + 1])


_JUNK = st.one_of(
    st.binary(max_size=80),
    st.lists(st.sampled_from([b"bytes", b"=", b"-", b",", b" ", b"0", b"7", b"42", b"x",
                              b"999999999999"]), max_size=20).map(b"".join),
)


@settings(max_examples=200, deadline=None)
@given(_JUNK, st.integers(0, 100))
def test_parse_range_total_on_junk(value, length):
    """parse_range never raises and only returns ranges inside [0, length)."""
    result = parse_range(value, length)
    assert result is None or result == UNSATISFIABLE or isinstance(result, list)
    if isinstance(result, list):
        assert 1 <= len(result) <= MAX_RANGES
        assert all(0 <= first <= last < length for first, last in result)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3000), st.randoms(use_true_random=False), st.data())
def test_multipart_covers_requested_bytes_and_boundary_not_in_body(size, rnd, data):
    """Multipart parts are exact slices covering every requested byte; the boundary never
    occurs in the body."""
    body = bytes(rnd.getrandbits(8) for _ in range(size))
    spec = st.tuples(st.integers(0, len(body) + 20), st.integers(0, 60))
    specs = data.draw(st.lists(spec, min_size=2, max_size=8))
    value = b"bytes=" + b",".join(b"%d-%d" % (a, a + n) for a, n in specs)
    result = get(stored=[(b"content-type", b"text/plain")], body=body, range=value)
    wanted = {i for a, n in specs for i in range(a, min(a + n, len(body) - 1) + 1)}
    if not wanted:
        assert result[0] == 416
        return
    status, headers, out = result
    assert status == 206
    content_type = field(headers, b"content-type")
    if not content_type.startswith(b"multipart/"):
        first, last, total = map(int, re.match(
            rb"bytes (\d+)-(\d+)/(\d+)\Z", field(headers, b"content-range")).groups())
        assert out == body[first:last + 1] and total == len(body)
        assert wanted <= set(range(first, last + 1))
        return
    boundary = content_type.split(b"boundary=")[1]
    assert boundary not in body
    covered = set()
    for part_headers, data in parse_multipart(content_type, out):
        first, last, total = map(int, re.match(
            rb"bytes (\d+)-(\d+)/(\d+)\Z", part_headers[b"content-range"]).groups())
        assert data == body[first:last + 1] and total == len(body)
        covered.update(range(first, last + 1))
    assert wanted <= covered
