"""Tests for revproxy.server.accesslog: combined and JSON lines, safe against injection."""

from __future__ import annotations

import json
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.cache.status import FWD_REASONS, cache_status
from revproxy.server.accesslog import (
    AccessLog, AccessRecord, cache_outcome, format_combined, format_json,
)

# 2000-10-10 13:55:36 UTC
WHEN = 971186136.25


def record(**kwargs: object) -> AccessRecord:
    fields = dict(client_ip="192.0.2.1", time=WHEN, method=b"GET", target=b"/x?y=1",
                  version=b"1.1", status=200, bytes_sent=2326, referer=b"http://r/",
                  user_agent=b"curl/8", upstream="10.0.0.5:8001", upstream_time=0.0123,
                  total_time=0.0151, request_id=b"abc", route="api")
    fields.update(kwargs)
    return AccessRecord(**fields)  # type: ignore[arg-type]


class TestCombined:
    def test_combined_line_layout(self) -> None:
        """The line is Apache combined followed by the proxy's key=value fields."""
        assert format_combined(record()) == (
            '192.0.2.1 - - [10/Oct/2000:13:55:36 +0000] "GET /x?y=1 HTTP/1.1" 200 2326 '
            '"http://r/" "curl/8" upstream=10.0.0.5:8001 upstream_time=0.012 total=0.015 '
            'rid=abc route=api attempts=0')

    def test_missing_values_are_dashes(self) -> None:
        """No referer, UA, upstream, upstream time, id or route -> '-'."""
        line = format_combined(record(referer=None, user_agent=b"", upstream="-",
                                      upstream_time=None, request_id=None, route=None))
        assert line.endswith('"-" "-" upstream=- upstream_time=- total=0.015 rid=- route=- attempts=0')

    def test_unparsed_request_logs_dash_request_line(self) -> None:
        """A request that never parsed (no method) logs the request line as '-'."""
        line = format_combined(record(method=None, target=None, version=None, status=400))
        assert '] "-" 400 ' in line

    def test_quotes_backslashes_and_control_bytes_are_escaped(self) -> None:
        """A UA with quotes, backslash, CR/LF and non-ASCII cannot break the line."""
        ua = b'evil" \\ x\r\n1.2.3.4 - - [x] "GET / HTTP/1.1" 200\xff'
        line = format_combined(record(user_agent=ua))
        assert "\n" not in line and "\r" not in line
        assert '"evil\\" \\\\ x\\x0D\\x0A1.2.3.4 - - [x] \\"GET / HTTP/1.1\\" 200\\xFF"' in line

    def test_spaces_in_unquoted_fields_are_escaped(self) -> None:
        """A space in a key=value field or the target is written \\x20."""
        line = format_combined(record(route="my route", target=b"/a b"))
        assert "route=my\\x20route" in line and "GET /a\\x20b HTTP/1.1" in line

    def test_str_fields_are_accepted(self) -> None:
        """Fields may be given as str; non-ASCII is escaped as its UTF-8 bytes."""
        line = format_combined(record(method="GET", target="/\u00e9", version="HTTP/1.0"))
        assert '"GET /\\xC3\\xA9 HTTP/1.0"' in line

    def test_time_is_utc_and_locale_free(self) -> None:
        """The timestamp is UTC with English month names, and changes with the second."""
        assert "[01/Jan/1970:00:00:00 +0000]" in format_combined(record(time=0.9))
        assert "[10/Oct/2000:13:55:37 +0000]" in format_combined(record(time=WHEN + 1))


class TestJson:
    def test_json_fields(self) -> None:
        """Every record field appears under its own key."""
        parsed = json.loads(format_json(record()))
        assert parsed == {
            "client_ip": "192.0.2.1", "time": WHEN, "method": "GET", "target": "/x?y=1",
            "version": "1.1", "status": 200, "bytes_sent": 2326, "referer": "http://r/",
            "user_agent": "curl/8", "upstream": "10.0.0.5:8001", "upstream_time": 0.0123,
            "total_time": 0.0151, "request_id": "abc", "route": "api",
            "attempts": 0, "remote_user": None, "time_local": "10/Oct/2000:13:55:36 +0000",
            "request": "GET /x?y=1 HTTP/1.1", "member": "10.0.0.5:8001", "cache": None,
            "cache_status": None, "firewall": None}

    def test_json_has_the_cache_outcome_and_the_firewall_note(self) -> None:
        """The Cache-Status becomes one word beside the field itself; the firewall note
        is logged as it was noted (its text when JSON cannot carry it)."""
        parsed = json.loads(format_json(record(
            cache=b"revproxy; hit; ttl=42", firewall={"action": "block", "rule": 942100})))
        assert parsed["cache"] == "hit"
        assert parsed["cache_status"] == "revproxy; hit; ttl=42"
        assert parsed["firewall"] == {"action": "block", "rule": 942100}
        assert json.loads(format_json(record(firewall=object())))["firewall"].startswith(
            "<object")
        assert json.loads(format_json(record(upstream="-")))["member"] is None

    @pytest.mark.parametrize("value, word", [
        (b"revproxy; hit; ttl=42", "hit"),
        (b"revproxy; hit; ttl=3; collapsed; detail=filling", "hit"),
        (b"revproxy; hit; ttl=-3; detail=stale-while-revalidate", "stale"),
        (b"revproxy; fwd=stale; detail=stale-if-error", "stale"),
        (b"revproxy; fwd=stale; fwd-status=304", "revalidated"),
        (b"revproxy; fwd=request; fwd-status=304", "revalidated"),
        (b"revproxy; fwd=stale; fwd-status=200; stored", "expired"),
        (b"revproxy; fwd=request; fwd-status=200", "bypass"),
        (b"revproxy; fwd=uri-miss; fwd-status=200; stored", "miss"),
        (b"revproxy; fwd=vary-miss; fwd-status=200", "miss"),
        (None, None),
    ])
    def test_cache_outcome_words(self, value, word) -> None:
        assert cache_outcome(value) == word

    @given(st.builds(lambda **kw: cache_status(**kw), hit=st.booleans(),
                     fwd=st.none() | st.sampled_from(sorted(FWD_REASONS)),
                     fwd_status=st.none() | st.integers(100, 599),
                     ttl=st.none() | st.integers(-10 ** 6, 10 ** 6), stored=st.booleans(),
                     collapsed=st.booleans(),
                     detail=st.none() | st.sampled_from(
                         ["stale-while-revalidate", "stale-if-error", "filling", "partial"])))
    def test_every_cache_status_has_a_word(self, value) -> None:
        """Every value our cache can write maps to one of the six words."""
        assert cache_outcome(value) in (
            "hit", "stale", "revalidated", "expired", "bypass", "miss")

    def test_json_escapes_newlines_and_invalid_utf8(self) -> None:
        """CR/LF are escaped; invalid UTF-8 bytes are shown as \\xHH text."""
        line = format_json(record(target=b"/a\r\nb\xff"))
        assert "\n" not in line and "\r" not in line
        assert json.loads(line)["target"] == "/a\r\nb\\xff"


class TestAccessLog:
    def test_writes_one_line_per_record(self) -> None:
        """AccessLog formats with the chosen format and appends a newline."""
        lines: List[str] = []
        AccessLog(lines.append, "json").log(record())
        AccessLog(lines.append, "combined").log(record())
        assert json.loads(lines[0])["route"] == "api"
        assert lines[1] == format_combined(record()) + "\n"

    def test_unknown_format_is_refused(self) -> None:
        """A format other than combined/json raises ValueError naming it."""
        with pytest.raises(ValueError, match="xml"):
            AccessLog(lambda line: None, "xml")


# --- properties --------------------------------------------------------------------

TEXT = st.none() | st.binary(max_size=30) | st.text(max_size=20)
RECORDS = st.builds(
    AccessRecord, client_ip=st.sampled_from(["192.0.2.1", "::1"]),
    time=st.floats(0, 4e9), method=TEXT, target=TEXT, version=TEXT,
    status=st.integers(100, 599), bytes_sent=st.integers(0, 2 ** 40), referer=TEXT,
    user_agent=TEXT, upstream=st.text(max_size=20),
    upstream_time=st.none() | st.floats(0, 1e4), total_time=st.floats(0, 1e4),
    request_id=TEXT, route=st.none() | st.text(max_size=20))


@settings(max_examples=200)
@given(RECORDS)
def test_any_record_is_one_printable_line(rec: AccessRecord) -> None:
    """Combined and JSON output never contain CR/LF and are printable ASCII."""
    for line in (format_combined(rec), format_json(rec)):
        assert "\n" not in line and "\r" not in line
        assert all(" " <= ch <= "~" for ch in line)


@settings(max_examples=200)
@given(RECORDS)
def test_json_parses_back_to_the_fields(rec: AccessRecord) -> None:
    """Every field survives a JSON round trip (bytes decoded as UTF-8, \\xHH if invalid)."""
    parsed = json.loads(format_json(rec))
    for name in AccessRecord.__slots__:
        value = getattr(rec, name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        assert parsed[name] == value


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_combined_quoted_field_round_trips(ua: bytes) -> None:
    """Unescaping the logged User-Agent gives back the exact bytes (nothing is lost)."""
    line = format_combined(record(user_agent=ua or b"-"))
    start = line.index('" "') + 3
    end = line.index('" upstream=')
    logged = line[start:end].encode("ascii")
    assert logged.decode("unicode_escape").encode("latin-1") == (ua or b"-")
