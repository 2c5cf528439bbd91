"""SecLang operators: build_operator's semantics, engines and errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.firewall.seclang import regex as rx
from revproxy.firewall.seclang.api import Match
from revproxy.firewall.seclang.operators import (
    OperatorError, UnsupportedOperator, build_operator, to_int)
from revproxy.firewall.seclang.pcre2py import translate
from revproxy.firewall.seclang.phrases import PhraseMatcher, _trie_regex


def no_macros(text: str) -> bytes:
    raise AssertionError("expand called for a constant argument: %r" % text)


def macros(values):
    def expand(text: str) -> bytes:
        out = text
        for key, value in values.items():
            out = out.replace("%{" + key + "}", value)
        return out.encode()
    return expand


def run(name, argument, value, expand=no_macros, base_dir="."):
    return build_operator(name, argument, base_dir)(value, expand)


def test_rx_captures_groups_and_dot_matches_newline():
    """@rx returns group 0 and groups 1..9 (b"" when unused); ``.`` crosses newlines."""
    m = run("rx", r"^/api/v(\d+)(x)?", b"/api/v12/users")
    assert m == Match(b"/api/v12", (b"/api/v12", b"12", b""))
    assert run("rx", "a.c", b"a\nc").data == b"a\nc"
    assert run("rx", "(?i)union.*select", b"1 UNION\nSELECT") is not None
    assert run("rx", "nikto", b"Mozilla") is None


def test_rx_is_byte_oriented():
    """A byte is a character: \\xHH matches raw bytes, ``\\w`` is ASCII only."""
    assert run("rx", r"\xac\xed\x00\x05", b"..\xac\xed\x00\x05..") is not None
    assert run("rx", r"^\w+$", "é".encode()) is None


def test_rx_at_most_ten_captures():
    """TX:0 .. TX:9: at most ten captures even with more groups."""
    m = run("rx", "(a)" * 12, b"a" * 12)
    assert len(m.captures) == 10


def test_rx_engines(monkeypatch):
    """RE2 takes what it can; look-around goes to Python re with a bounded subject."""
    plain = rx.compile_rx("abc")
    assert plain.engine == ("re2" if rx.RE2_AVAILABLE else "re")
    lookahead = rx.compile_rx("<\\?(?!xml)")
    assert lookahead.engine == "re" and lookahead.limit == rx.RE_FALLBACK_LIMIT
    assert lookahead.search(b"<?php") is not None and lookahead.search(b"<?xml") is None
    far = b"x" * (rx.RE_FALLBACK_LIMIT + 10) + b"<?php"
    assert lookahead.search(far) is None  # past the bound: not seen


def test_python_fallback_handles_pcre_syntax():
    """The fallback accepts the CRS's PCRE spellings: \\x{..}, \\z, (?i) mid-pattern,
    variable-width look-behind and possessive quantifiers."""
    cases = [
        (r"\x{bc}[^>\x{be}]*[>\x{be}]", b"\xbcscript\xbe", True),
        (r"abc\z", b"xabc", True),
        (r"abc\z", b"abc\n", False),
        (r"^(?i)up", b"UPDATE", True),
        (r"a(?i)b|c", b"C", True),
        (r"a(?i)b|c", b"aB", True),
        (r"a(?i)b|c", b"AB", False),
        (r"(?<!&(?:amp)|&(?:lt)|x);", b"&amp;", False),
        (r"(?<!&(?:amp)|&(?:lt)|x);", b"y;", True),
        (r"(?<=ab|c)d", b"cd", True),
        (r"^\s*+;x", b"  ;x", True),
    ]
    for pattern, subject, found in cases:
        regex = rx.compile_python(pattern.encode())
        assert (regex.search(subject) is not None) is found, (pattern, subject)


def test_translate_leaves_ordinary_patterns_alone():
    """Patterns without PCRE-only syntax pass through unchanged."""
    assert translate(rb"(?i)^(?:a|b)[\]x]+$") == rb"(?i)^(?:a|b)[\]x]+$"


def test_rx_bad_pattern_is_an_operator_error():
    """A pattern neither engine compiles is refused at load with the reason."""
    with pytest.raises(OperatorError, match="@rx"):
        build_operator("rx", "a(b", ".")


def test_rx_with_macro_compiles_per_value():
    """A macro in the pattern is expanded at each call."""
    op = build_operator("rx", "^%{tx.m}$", ".")
    assert op(b"GET", macros({"tx.m": "(?:GET|HEAD)"})) is not None
    assert op(b"PUT", macros({"tx.m": "(?:GET|HEAD)"})) is None


def test_pm_is_case_insensitive_and_returns_the_phrase():
    """@pm finds any phrase ignoring case and reports it as written."""
    m = run("pm", "WebZIP WebCopier Webster", b"Mozilla webcopier/1.0")
    assert m == Match(b"WebCopier", (b"WebCopier",))
    assert run("pm", "<script> javascript: onerror=", b"nothing here") is None
    assert run("pm", "|41 42|c", b"xxabcxx").data == b"ABc"


@pytest.mark.parametrize("engine", ["regex"] + (["ahocorasick"] if
                         __import__("revproxy.firewall.seclang.phrases", fromlist=["x"])
                         .AHOCORASICK_AVAILABLE else []))
def test_phrase_engines_find_the_same_phrases(engine):
    """Both phrase engines find a phrase exactly when one occurs."""
    phrases = [b"select", b"sel", b"union all", b"drop table", b"x"]
    matcher = PhraseMatcher(phrases, engine=engine)
    assert matcher.search(b"a UNION ALL b") == b"union all"
    assert matcher.search(b"SELECT 1") in (b"select", b"sel")
    assert matcher.search(b"nothing") is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=20), st.binary(max_size=60))
def test_trie_regex_agrees_with_naive_search(phrases, data):
    """The trie regex finds a phrase iff some phrase is a case-insensitive substring."""
    matcher = PhraseMatcher(phrases, engine="regex")
    expected = any(p.lower() in data.lower() for p in phrases)
    found = matcher.search(data)
    assert (found is not None) == expected
    if found is not None:
        assert found.lower() in data.lower()


def test_pm_fallback_is_a_trie_not_an_alternation_per_phrase():
    """The fallback regex shares prefixes, so its cost per byte is the trie depth; 5,000
    phrases over 64 KiB still find the one that occurs."""
    assert _trie_regex([b"abc", b"abd", b"ab"]) == b"ab(?:(?:c|d))?"
    phrases = [("w%05dz" % i).encode() for i in range(5000)]
    matcher = PhraseMatcher(phrases, engine="regex")
    data = b"lorem ipsum w1234 " * 3600
    assert matcher.search(data) is None
    assert matcher.search(data + b"W04999Z") == b"w04999z"


def test_pm_from_file(tmp_path):
    """@pmFromFile reads phrases relative to the rule file's directory, skipping comments."""
    (tmp_path / "bad.data").write_bytes(b"# comment\n\nnikto\r\n  sqlmap \n")
    op = build_operator("pmFromFile", "bad.data", str(tmp_path))
    assert op(b"User-Agent: SQLMap/1.0", no_macros).data == b"sqlmap"
    assert op(b"curl", no_macros) is None
    assert build_operator("pmf", "bad.data", str(tmp_path))(b"Nikto", no_macros) is not None
    with pytest.raises(OperatorError, match="missing.data"):
        build_operator("pmFromFile", "missing.data", str(tmp_path))


@pytest.mark.parametrize("name,argument,value,matched", [
    ("contains", ".php", b"GET /index.php HTTP/1.1", True),
    ("contains", "admin", b"/user", False),
    ("strmatch", "WebZIP", b"x WebZIP y", True),
    ("containsword", "select", b"a select b", True),
    ("containsword", "select", b"selection", False),
    ("containsword", "select", b"select", True),
    ("streq", "POST", b"POST", True),
    ("streq", "POST", b"post", False),
    ("beginswith", "GET", b"GET / HTTP/1.1", True),
    ("beginsWith", "/admin", b"/user/admin", False),
    ("endsWith", ".exe", b"/x/setup.exe", True),
    ("within", "GET,POST,HEAD", b"POST", True),
    ("within", "GET,POST,HEAD", b"PUT", False),
    ("within", "GET", b"", True),
])
def test_string_operators(name, argument, value, matched):
    """String operators per ModSecurity (case-sensitive; @within looks for the value)."""
    assert (run(name, argument, value) is not None) is matched


def test_string_operators_expand_macros():
    """A macro in the argument is expanded with the transaction's values at each call."""
    op = build_operator("within", "%{tx.allowed_methods}", ".")
    assert op(b"GET", macros({"tx.allowed_methods": "GET HEAD POST"})) is not None
    assert op(b"PUT", macros({"tx.allowed_methods": "GET HEAD POST"})) is None


@pytest.mark.parametrize("text,number", [
    (b"15", 15), (b" -3", -3), (b"+7", 7), (b"12abc", 12), (b"abc", 0), (b"", 0),
    (b"99999999999", 0), (b"1.9", 1)])
def test_numbers_read_as_modsecurity_does(text, number):
    """A leading integer (std::stoi); non-numeric or out of int range -> 0."""
    assert to_int(text) == number


@pytest.mark.parametrize("name,argument,value,matched", [
    ("eq", "15", b"15", True), ("eq", "15", b"16", False), ("ge", "15", b"15", True),
    ("gt", "15", b"15", False), ("le", "15", b"3", True), ("lt", "15", b"15", False),
    ("lt", "1", b"abc", True), ("eq", "0", b"abc", True),
])
def test_numeric_operators(name, argument, value, matched):
    """@eq/@ge/@gt/@le/@lt compare integers."""
    assert (run(name, argument, value) is not None) is matched


def test_numeric_operator_with_macro():
    """``@ge %{tx.inbound_anomaly_score_threshold}`` compares with the expanded number."""
    op = build_operator("ge", "%{tx.threshold}", ".")
    assert op(b"5", macros({"tx.threshold": "5"})) is not None
    assert op(b"4", macros({"tx.threshold": "5"})) is None


def test_validate_byte_range():
    """A byte outside the ranges is a match (a violation)."""
    op = build_operator("validateByteRange", "10, 13, 32-126", ".")
    assert op(b"hello world\r\n", no_macros) is None
    assert op(b"nul\x00", no_macros) is not None
    assert op(b"\xe9", no_macros) is not None
    with pytest.raises(OperatorError):
        build_operator("validateByteRange", "1-300", ".")


@pytest.mark.parametrize("value,invalid", [
    (b"a%20b", False), (b"100%", True), (b"%4", True), (b"%zz", True), (b"%41%4a", False)])
def test_validate_url_encoding(value, invalid):
    """A % not followed by two hex digits is a violation."""
    assert (run("validateUrlEncoding", "", value) is not None) is invalid


@pytest.mark.parametrize("value,invalid", [
    (b"plain", False), ("é€😀".encode(), False), (b"\xc3", True), (b"\xc0\x80", True),
    (b"\xed\xa0\x80", True), (b"\xf5\x80\x80\x80", True), (b"\xff", True)])
def test_validate_utf8_encoding(value, invalid):
    """Truncated, overlong, surrogate and out-of-range sequences are violations."""
    assert (run("validateUtf8Encoding", "", value) is not None) is invalid


def test_ip_match(tmp_path):
    """@ipMatch takes addresses and CIDR ranges, IPv4 and IPv6; a bad entry fails at load."""
    op = build_operator("ipMatch", "192.168.1.100,10.10.50.0/24, 2001:db8::/32", ".")
    assert op(b"10.10.50.7", no_macros) is not None
    assert op(b"2001:db8::1", no_macros) is not None
    assert op(b"192.168.1.101", no_macros) is None
    assert op(b"not-an-ip", no_macros) is None
    with pytest.raises(OperatorError, match="999.1.1.1"):
        build_operator("ipMatch", "999.1.1.1", ".")
    (tmp_path / "ips.txt").write_text("# office\n127.0.0.0/8\n")
    from_file = build_operator("ipMatchFromFile", "ips.txt", str(tmp_path))
    assert from_file(b"127.0.0.2", no_macros) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda t: b"10.10.%d.%d" % t),
    st.sampled_from([b"192.168.1.100", b"192.168.1.101", b" 10.10.50.1 ", b"2001:db8::1",
                     b"2001:db9::1", b"::1", b"x", b"", b"10.10.50.256"])), max_size=30))
def test_ip_match_remembers_answers_without_changing_them(values):
    """The per-address memo of @ipMatch gives what parsing each address gives, however
    often an address comes back, and stays bounded."""
    import revproxy.firewall.seclang.operators as ops
    saved = ops.IP_MEMO_MAX
    ops.IP_MEMO_MAX = 8
    try:
        op = build_operator("ipMatch", "192.168.1.100,10.10.50.0/24, 2001:db8::/32", ".")
        for value in values * 2:
            fresh = build_operator("ipMatch", "192.168.1.100,10.10.50.0/24, 2001:db8::/32",
                                   ".")
            assert (op(value, no_macros) is None) is (fresh(value, no_macros) is None)
            assert len(op.memo) <= 8
    finally:
        ops.IP_MEMO_MAX = saved


def test_libinjection_operators():
    """@detectSQLi captures the fingerprint; @detectXSS matches script vectors."""
    m = run("detectSQLi", "", b"1' OR '1'='1")
    assert m == Match(b"1' OR '1'='1", (b"s&sos",))
    assert run("detectSQLi", "", b"hello") is None
    assert run("detectXSS", "", b"<script>alert(1)</script>") is not None
    assert run("detectXSS", "", b"hello") is None


def test_constant_operators():
    """@unconditionalMatch always matches, @noMatch never."""
    assert run("unconditionalMatch", "", b"x") == Match(b"x")
    assert run("noMatch", "", b"x") is None


@pytest.mark.parametrize("name", ["rbl", "geoLookup", "inspectFile", "nonsense"])
def test_unsupported_operators_are_refused_by_name(name):
    """An operator we do not run is an error at load naming it."""
    with pytest.raises(UnsupportedOperator) as info:
        build_operator(name, "x", ".")
    assert info.value.name == name and isinstance(info.value, ValueError)


def _reference_to_int(data: bytes) -> int:
    """std::stoi through the leading-integer pattern alone (before the digits shortcut)."""
    import re as _re
    m = _re.match(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)", data)
    if m is None:
        return 0
    number = int(m.group(1))
    return number if -(1 << 31) <= number <= (1 << 31) - 1 else 0


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(0, 1 << 40).map(lambda n: b"%d" % n),
                 st.binary(max_size=12),
                 st.lists(st.sampled_from([b"0", b"7", b"9", b" ", b"-", b"+", b"x",
                                           b"\xd9\xa3", b"\xb2"]), max_size=12).map(b"".join)))
def test_to_int_digits_shortcut_is_the_leading_integer(data):
    assert to_int(data) == _reference_to_int(data)
