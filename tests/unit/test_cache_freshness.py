"""Freshness lifetime (RFC 9111 §4.2.1, §4.2.2, §5.3) and age (§4.2.3)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.cache.dates import format_http_date
from revproxy.cache.freshness import HEURISTIC_STATUSES, current_age, freshness_lifetime

T0 = 1_700_000_000.0


def hdrs(*lines):
    out = []
    for line in lines:
        name, _, value = line.partition(":")
        out.append((name.strip().lower().encode(), value.strip().encode()))
    return out


def date(when):
    return "date: " + format_http_date(when).decode()


def at(name, when):
    return name + ": " + format_http_date(when).decode()


# --- lifetime -------------------------------------------------------------------------------

def test_s_maxage_wins_in_a_shared_cache():
    """§4.2.1: a shared cache uses s-maxage over max-age and Expires."""
    h = hdrs("cache-control: max-age=10, s-maxage=99", date(T0), at("expires", T0 + 5))
    assert freshness_lifetime(200, h) == (99.0, False)


def test_s_maxage_is_ignored_by_a_private_cache():
    """§5.2.2.10: s-maxage applies to shared caches only."""
    h = hdrs("cache-control: max-age=10, s-maxage=99")
    assert freshness_lifetime(200, h, shared=False) == (10.0, False)


def test_max_age_wins_over_expires():
    """§5.3: with max-age present, Expires is ignored."""
    h = hdrs("cache-control: max-age=10", date(T0), at("expires", T0 + 500))
    assert freshness_lifetime(200, h) == (10.0, False)


def test_expires_minus_date():
    """§4.2.1: without max-age, the lifetime is Expires minus Date."""
    h = hdrs(date(T0), at("expires", T0 + 500))
    assert freshness_lifetime(200, h, response_time=T0 + 3) == (500.0, False)


def test_expires_without_date_uses_response_time():
    """§4.2.1 / RFC 9110 §6.6.1: no Date -> the time the response was received."""
    h = hdrs(at("expires", T0 + 500))
    assert freshness_lifetime(200, h, response_time=T0 + 100) == (400.0, False)


def test_invalid_expires_means_already_expired():
    """§5.3: an invalid Expires (notably "0") is a time in the past: lifetime 0, no heuristic."""
    for value in ("0", "tomorrow", ""):
        h = hdrs(date(T0), "expires: " + value, at("last-modified", T0 - 86400))
        assert freshness_lifetime(200, h, response_time=T0) == (0.0, False), value


def test_expires_before_date_is_zero_not_negative():
    """§4.2.1: an Expires in the past gives no freshness (never a negative lifetime)."""
    h = hdrs(date(T0), at("expires", T0 - 60))
    assert freshness_lifetime(200, h) == (0.0, False)


def test_invalid_max_age_means_stale_not_heuristic():
    """§4.2.1: invalid freshness information makes the response stale (lifetime 0)."""
    h = hdrs("cache-control: max-age=ten", date(T0), at("last-modified", T0 - 86400))
    assert freshness_lifetime(200, h) == (0.0, False)


def test_invalid_s_maxage_does_not_fall_back_to_max_age():
    """§4.2.1: an invalid s-maxage is invalid freshness information: stale."""
    h = hdrs("cache-control: s-maxage=1.5, max-age=60")
    assert freshness_lifetime(200, h) == (0.0, False)


def test_heuristic_is_ten_percent_of_age_since_last_modified():
    """§4.2.2: a typical heuristic is 10% of the time since Last-Modified."""
    h = hdrs(date(T0), at("last-modified", T0 - 1000))
    assert freshness_lifetime(200, h) == (100.0, True)


def test_heuristic_is_capped():
    """§4.2.2: the heuristic lifetime is bounded (heuristic_max)."""
    h = hdrs(date(T0), at("last-modified", T0 - 10 ** 8))
    assert freshness_lifetime(200, h, heuristic_max=3600) == (3600.0, True)


def test_heuristic_only_for_heuristically_cacheable_statuses():
    """§4.2.2: heuristics only for statuses defined heuristically cacheable (not 302, 500)."""
    h = hdrs(date(T0), at("last-modified", T0 - 1000))
    for status in (302, 307, 500, 503):
        assert freshness_lifetime(status, h) == (0.0, False)
    for status in HEURISTIC_STATUSES:
        assert freshness_lifetime(status, h) == (100.0, True)


def test_public_allows_heuristic_for_any_status():
    """§5.2.2.9: a public response without explicit freshness is heuristically cacheable."""
    h = hdrs("cache-control: public", date(T0), at("last-modified", T0 - 1000))
    assert freshness_lifetime(302, h) == (100.0, True)


def test_last_modified_after_date_gives_nothing():
    """§4.2.2: a Last-Modified in the future of Date yields no heuristic freshness."""
    h = hdrs(date(T0), at("last-modified", T0 + 1000))
    assert freshness_lifetime(200, h) == (0.0, True)


def test_no_information_gives_zero():
    """§4.2.1: no explicit or heuristic information: lifetime 0."""
    assert freshness_lifetime(200, hdrs(date(T0))) == (0.0, False)


@settings(max_examples=200)
@given(st.one_of(st.none(), st.integers(0, 10 ** 6)), st.one_of(st.none(), st.integers(0, 10 ** 6)),
       st.one_of(st.none(), st.integers(-10 ** 6, 10 ** 6)),
       st.one_of(st.none(), st.integers(0, 10 ** 7)), st.booleans())
def test_lifetime_precedence(s_maxage, max_age, expires_in, modified_ago, shared):
    """§4.2.1: s-maxage (shared) > max-age > Expires - Date > heuristic > 0."""
    directives = []
    if s_maxage is not None:
        directives.append("s-maxage=%d" % s_maxage)
    if max_age is not None:
        directives.append("max-age=%d" % max_age)
    lines = [date(T0)]
    if directives:
        lines.append("cache-control: " + ", ".join(directives))
    if expires_in is not None:
        lines.append(at("expires", T0 + expires_in))
    if modified_ago is not None:
        lines.append(at("last-modified", T0 - modified_ago))
    lifetime, heuristic = freshness_lifetime(200, hdrs(*lines), shared=shared)
    if shared and s_maxage is not None:
        expected = (s_maxage, False)
    elif max_age is not None:
        expected = (max_age, False)
    elif expires_in is not None:
        expected = (max(0, expires_in), False)
    elif modified_ago is not None:
        expected = (min(modified_ago * 0.1, 86400.0), True)
    else:
        expected = (0.0, False)
    assert (lifetime, heuristic) == (float(expected[0]), expected[1])


# --- age ----------------------------------------------------------------------------------

def test_age_formula_of_the_rfc():
    """§4.2.3: age = max(apparent_age, age_value + response_delay) + resident_time."""
    h = hdrs(date(T0), "age: 30")
    # request at T0-5, response at T0+10: apparent 10, corrected age 30 + 15 = 45
    assert current_age(h, T0 - 5, T0 + 10, T0 + 110) == 45 + 100


def test_apparent_age_counts_when_larger():
    """§4.2.3: a Date far behind the response time (an old response) shows as apparent age."""
    h = hdrs(date(T0 - 500))
    assert current_age(h, T0, T0, T0) == 500


def test_date_in_the_future_gives_no_negative_apparent_age():
    """§4.2.3: apparent_age = max(0, response_time - date_value)."""
    h = hdrs(date(T0 + 3600))
    assert current_age(h, T0, T0 + 2, T0 + 2) == 2  # only the response delay


def test_invalid_age_header_is_ignored():
    """§4.2.3: age_value is 0 when not available; an invalid Age is not available."""
    for value in ("-10", "ten", "1.5", ""):
        assert current_age(hdrs(date(T0), "age: " + value), T0, T0, T0) == 0, value


def test_age_list_uses_first_member():
    """§4.2.1: with several values, the first one is used (documented choice)."""
    assert current_age(hdrs(date(T0), "age: 100, 5"), T0, T0, T0) == 100
    assert current_age(hdrs(date(T0), "age: 7", "age: 500"), T0, T0, T0) == 7


def test_huge_age_is_capped():
    """§1.2.2: an Age beyond 2**31 is taken as 2**31."""
    assert current_age(hdrs("age: 99999999999999"), T0, T0, T0) == 2 ** 31


_clock = st.floats(T0 - 10 ** 6, T0 + 10 ** 6, allow_nan=False)


@settings(max_examples=200)
@given(_clock, _clock, _clock, st.one_of(st.none(), _clock),
       st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_age_is_never_negative(request_time, response_time, now, date_at, age):
    """§4.2.3 with any clocks (skewed, reversed): the age is >= 0."""
    lines = ([date(date_at)] if date_at is not None else []) + (
        ["age: %d" % age] if age is not None else [])
    assert current_age(hdrs(*lines), request_time, response_time, now) >= 0


@settings(max_examples=200)
@given(_clock, st.floats(0, 100), st.floats(-10 ** 5, 10 ** 5), st.floats(0, 10 ** 5),
       st.floats(0, 10 ** 5))
def test_resident_time_grows_age_one_to_one(response_time, delay, skew, wait, more):
    """§4.2.3: after the response arrives, age grows exactly as fast as the clock."""
    h = hdrs(date(int(response_time + skew)))
    start = current_age(h, response_time - delay, response_time, response_time + wait)
    later = current_age(h, response_time - delay, response_time, response_time + wait + more)
    assert abs((later - start) - more) < 1e-6


@settings(max_examples=200)
@given(_clock, st.integers(-10 ** 5, 10 ** 5), st.floats(0, 100))
def test_apparent_age_with_clock_skew(response_time, skew, delay):
    """§4.2.3: the age at arrival is max(0, response_time - Date) or the response delay."""
    dated = int(response_time) + skew
    age = current_age(hdrs(date(dated)), response_time - delay, response_time, response_time)
    assert abs(age - max(max(0.0, response_time - dated), delay)) < 1e-6
