"""HTTP-date parsing and formatting (RFC 9110 §5.6.7)."""

from __future__ import annotations

import calendar
import time

from hypothesis import given, settings, strategies as st

from revproxy.cache.dates import format_http_date, parse_http_date

RFC_EXAMPLE = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _rfc850(when):
    t = time.gmtime(when)
    return ("%s, %02d-%s-%02d %02d:%02d:%02d GMT" % (
        DAYS[t.tm_wday], t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year % 100,
        t.tm_hour, t.tm_min, t.tm_sec)).encode()


def _asctime(when):
    t = time.gmtime(when)
    return ("%s %s %2d %02d:%02d:%02d %04d" % (
        DAYS[t.tm_wday][:3], MONTHS[t.tm_mon - 1], t.tm_mday,
        t.tm_hour, t.tm_min, t.tm_sec, t.tm_year)).encode()


def test_the_three_rfc_examples_are_the_same_instant():
    """§5.6.7: IMF-fixdate, rfc850 and asctime forms of the RFC's example all parse."""
    assert parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == RFC_EXAMPLE
    assert parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT") == RFC_EXAMPLE
    assert parse_http_date(b"Sun Nov  6 08:49:37 1994") == RFC_EXAMPLE


def test_format_is_imf_fixdate():
    """§5.6.7: a sender generates IMF-fixdate."""
    assert format_http_date(RFC_EXAMPLE) == b"Sun, 06 Nov 1994 08:49:37 GMT"


def test_rfc850_year_more_than_50_years_ahead_is_last_century():
    """§5.6.7: a two-digit year that looks >50 years in the future means the past century."""
    now = calendar.timegm((2030, 1, 1, 0, 0, 0))
    assert time.gmtime(parse_http_date(b"Friday, 01-Jan-80 00:00:00 GMT", now=now)).tm_year == 2080
    assert time.gmtime(parse_http_date(b"Monday, 01-Jan-81 00:00:00 GMT", now=now)).tm_year == 1981


def test_rfc850_year_picks_the_nearest_century():
    """§5.6.7: "00" read in 1999 is 2000 (one year ahead), not 1900."""
    now = calendar.timegm((1999, 6, 1, 0, 0, 0))
    assert parse_http_date(b"Saturday, 01-Jan-00 00:00:00 GMT", now=now) == calendar.timegm(
        (2000, 1, 1, 0, 0, 0))


def test_invalid_dates_give_none():
    """§5.6.7: HTTP-date is case-sensitive and fixed; anything else is invalid (None)."""
    for junk in (b"0", b"", b"-1", b"Sun, 06 Nov 1994 08:49:37 gmt",
                 b"sun, 06 Nov 1994 08:49:37 GMT", b"Sun, 6 Nov 1994 08:49:37 GMT",
                 b"Sun, 06 Nov 1994 08:49:37 UTC", b"Sun, 06 Nov 1994 08:49:37",
                 b"Sun, 31 Feb 1994 08:49:37 GMT", b"Sun, 06 Nov 1994 24:00:00 GMT",
                 b"Sun, 06 Nov 1994 08:60:00 GMT", b"Sun, 06 Nov 1994 08:49:37 GMT x",
                 b"Sun, 06 Nov 0000 08:49:37 GMT", b"Sun Nov 06 08:49:37 94", None):
        assert parse_http_date(junk) is None, junk


def test_surrounding_whitespace_is_ignored():
    """RFC 9110 §5.5: OWS around a field value is not part of it."""
    assert parse_http_date(b"  Sun, 06 Nov 1994 08:49:37 GMT\t") == RFC_EXAMPLE


def test_leap_second_is_accepted():
    """RFC 5322 §3.3 (the IMF-fixdate grammar's source): second 60 is a leap second."""
    assert parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT") == calendar.timegm(
        (2017, 1, 1, 0, 0, 0))


_instants = st.integers(0, calendar.timegm((2069, 12, 31, 23, 59, 59))).map(float)


@settings(max_examples=200)
@given(_instants)
def test_imf_and_asctime_round_trip(when):
    """format -> parse is the identity; asctime of the same instant parses alike."""
    assert parse_http_date(format_http_date(when)) == when
    assert parse_http_date(_asctime(when)) == when


@settings(max_examples=200)
@given(_instants, st.integers(-49, 49))
def test_rfc850_round_trips_near_now(when, years_off):
    """An rfc850 date within 50 years of `now` parses to the instant it names."""
    now = when + years_off * 365.25 * 86400
    assert parse_http_date(_rfc850(when), now=now) == when


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=40), st.text(max_size=40)))
def test_parse_never_raises(junk):
    """Junk gives None or a float, never an exception."""
    result = parse_http_date(junk)
    assert result is None or isinstance(result, float)
