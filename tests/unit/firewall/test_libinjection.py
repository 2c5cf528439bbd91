"""libinjection: the pure-Python port against libinjection 3.9.2's own verdicts."""

from __future__ import annotations

import os
import platform
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revproxy.firewall.seclang import libinjection
from revproxy.firewall.seclang.libinjection import _sqli_data, python_is_sqli, python_is_xss

from .crs_corpus import corpus

# (input, fingerprint) as the C library (libinjection 3.9.2) reports them.
SQLI = [
    (b"1' OR '1'='1", b"s&sos"),
    (b"1 UNION SELECT password FROM users", b"1UEnk"),
    (b"admin'--", b"sc"),
    (b"1;DROP TABLE users", b"1;Tnn"),
    (b"1 or 1=1", b"1&1"),
    (b"-1839' or '1'='1", b"s&sos"),
    (b"' or sleep(5)#", b"s&f(1"),
    (b"SELECT * FROM t WHERE a=1", b"Eoknk"),
    (b"1/*!union*/select", b"X"),
    (b"x' AND 1=(SELECT COUNT(*) FROM tabname); --", b"s&1o("),
]
NOT_SQLI = [b"hello world", b"O'Reilly", b"foo@example.com", b"@@version", b"3.14", b""]
XSS = [b"<script>alert(1)</script>", b"<img src=x onerror=alert(1)>",
       b'<a href="javascript:alert(1)">', b"<!DOCTYPE html>", b'" onmouseover="alert(1)',
       b"<svg/onload=alert(1)>", b"' style='x:expression(alert(1))",
       b"<a href=\"&#106;avascript:alert(1)\">"]
NOT_XSS = [b"hello <b>world</b>", b"1 < 2", b'<a href="/x">ok</a>', b"<div>plain</div>", b""]


@pytest.mark.parametrize("data,fingerprint", SQLI)
def test_sqli_port_gives_the_c_fingerprint(data, fingerprint):
    """The port flags known SQL injections with libinjection's own fingerprints."""
    assert python_is_sqli(data) == (True, fingerprint)
    assert libinjection.is_sqli(data) == (True, fingerprint)


@pytest.mark.parametrize("data", NOT_SQLI)
def test_sqli_port_passes_benign_text(data):
    """Ordinary text, e-mail addresses and numbers are not SQL injection."""
    assert python_is_sqli(data) == (False, b"")


@pytest.mark.parametrize("data", XSS)
def test_xss_port_flags_vectors(data):
    """Script tags, event handlers, javascript: URLs (entity-encoded too), doctype, style."""
    assert python_is_xss(data) is True
    assert libinjection.is_xss(data) is True


@pytest.mark.parametrize("data", NOT_XSS)
def test_xss_port_passes_harmless_html(data):
    """Plain markup and comparisons are not XSS."""
    assert python_is_xss(data) is False


def test_data_module_keeps_the_licence_and_the_whole_table():
    """The generated data keeps libinjection's BSD notice and all 9352 keywords."""
    assert "Nick Galbreath" in _sqli_data.__doc__ and "Redistribution" in _sqli_data.__doc__
    assert len(_sqli_data.KEYWORDS) == 9352 and len(_sqli_data.CHAR_PARSE_MAP) == 256


NATIVE = libinjection.native is not None
needs_native = pytest.mark.skipif(
    not NATIVE, reason="the C extension is not built (PyPy, or no C compiler at install)")


def test_the_extension_is_built_where_ci_expects_it():
    """CI installs a C compiler and the Python headers: on CPython the C library must serve
    (a failed optional build would otherwise pass unnoticed, on the slow port)."""
    if os.environ.get("CI") != "true" or platform.python_implementation() != "CPython":
        pytest.skip("only CI on CPython promises the C extension")
    assert libinjection.IMPLEMENTATION == "native"
    assert libinjection.native.version() == "3.9.2"


@needs_native
def test_native_takes_any_bytes():
    """NULs and bytes that are not UTF-8 go to the C library as they are, as ModSecurity
    passes them; the answers are the port's."""
    for data in (b"\xff1' OR '1'='1", b"1' OR '1'='1\x00--", b"\xff<script>", b"\x00",
                 b"<scr\x00ipt>alert(1)"):
        assert libinjection.native_is_sqli(data) == python_is_sqli(data)
        assert libinjection.native_is_xss(data) == python_is_xss(data)
    assert libinjection.is_xss(b"\xff<script>") is True


@needs_native
def test_port_agrees_with_the_c_library_on_the_crs_corpus():
    """On every CRS 4 test payload, the port and the C library give the same answers."""
    payloads = corpus(("REQUEST-9",))
    if not payloads:
        pytest.skip("CRS regression tests not found under ../shared")
    differences = []
    for data in payloads:
        if libinjection.native_is_sqli(data) != python_is_sqli(data):
            differences.append(("sqli", data))
        if libinjection.native_is_xss(data) != python_is_xss(data):
            differences.append(("xss", data))
    assert len(payloads) > 1000
    assert differences == []


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abor1 '\"-#/*();=<>&|xsUNIOSELCT`@$\\{}.,")))
       .map(lambda t: t.encode("utf-8"))
       | st.binary(max_size=120))
def test_port_agrees_with_the_c_library_on_sql_like_text(data):
    """Random SQL-ish strings and random bytes: same verdict and fingerprint as the C
    library."""
    assert python_is_sqli(data) == libinjection.native_is_sqli(data)
    assert python_is_xss(data) == libinjection.native_is_xss(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_port_never_raises_on_bytes(data):
    """Any bytes: a verdict, never an exception."""
    found, fingerprint = python_is_sqli(data)
    assert isinstance(found, bool) and (fingerprint != b"") == found
    assert python_is_xss(data) in (True, False)


def test_port_is_linear_on_large_hostile_input():
    """64 KiB of nested quotes and comments is judged in bounded time."""
    data = (b"'/*\"<a href=`" * 5000)[: 64 * 1024]
    start = time.perf_counter()
    python_is_sqli(data)
    python_is_xss(data)
    assert time.perf_counter() - start < 60  # exponential would never end


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80).map(lambda b: b.replace(b"<", b"").replace(b"=", b""))
       | st.text(alphabet=st.sampled_from(list("onerror src href style ' \"`>/\t\0&#x;:a1")))
       .map(lambda t: t.encode("utf-8")))
def test_xss_fast_path_agrees_with_the_tokenizer(data):
    """Without '<' and '=' the shortcut's False is what all five contexts conclude."""
    from revproxy.firewall.seclang.libinjection import _xss
    full = any(_xss.is_xss_in(data, flags) for flags in range(5))
    assert python_is_xss(data) == full
    if b"<" not in data and b"=" not in data:
        assert full is False


def test_memo_gives_the_same_verdicts_and_stays_bounded(monkeypatch):
    """Memoised verdicts equal fresh ones; the memo never exceeds its entry bound and
    never keeps inputs longer than MEMO_MAX_INPUT."""
    monkeypatch.setattr(libinjection, "MEMO_MAX_ENTRIES", 50)
    libinjection.clear_memo()
    for data, fingerprint in SQLI:
        assert libinjection.is_sqli(data) == (True, fingerprint)
        assert libinjection.is_sqli(data) == (True, fingerprint)  # from the memo
    for data in XSS:
        assert libinjection.is_xss(data) is True and libinjection.is_xss(data) is True
    for data in NOT_XSS:
        assert libinjection.is_xss(data) is False and libinjection.is_xss(data) is False
    for i in range(200):
        libinjection.is_sqli(b"value %d" % i)
        libinjection.is_xss(b"value %d" % i)
        assert len(libinjection._sqli_memo) <= 50 and len(libinjection._xss_memo) <= 50
    long = b"1' OR '1'='1" + b" " * libinjection.MEMO_MAX_INPUT
    assert libinjection.is_sqli(long)[0] is True
    assert long not in libinjection._sqli_memo
    libinjection.clear_memo()
    assert not libinjection._sqli_memo and not libinjection._xss_memo
