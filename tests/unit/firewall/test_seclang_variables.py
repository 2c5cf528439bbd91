"""Variables: what each collection and scalar yields, keys, regex keys, counts, exclusions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.api import BodyResult, FilePart
from revproxy.firewall.seclang.keymatch import KeyMatcher, drop_excluded
from revproxy.firewall.seclang.rules import Target
from revproxy.firewall.seclang.variables import split_target
from tests.unit.firewall.seclang_helpers import run, view, waf

URI = b"/dir/Index.php?a=1&B=two&a=3"
HEADERS = ((b"user-agent", b"UA/1"), (b"cookie", b"sid=abc; Theme=dark"),
           (b"x-dup", b"1"), (b"x-dup", b"2"))


def values(target: str, uri: bytes = URI, headers=HEADERS, **kw):
    """Every (name, value) the target yields, recorded through a logging rule."""
    w = waf('SecRequestBodyAccess On\nSecResponseBodyAccess On\n'
            'SecRule %s "@unconditionalMatch" "id:1,phase:%d,pass,nolog,'
            "setvar:'tx.seen=+1'\"\n" % (target, kw.pop("phase", 2)), **kw.pop("waf", {}))
    tx = w.transaction(view(uri, kw.pop("method", b"GET"), headers))
    out = []
    orig = tx._matched

    def spy(rule, name, tv, m, detect):
        out.append((name, tv))
        return orig(rule, name, tv, m, detect)
    tx._matched = spy
    tx.phase1()
    tx.phase2(kw.pop("body", None))
    if "response" in kw:
        status, rh, rb = kw.pop("response")
        tx.phase3(status, rh)
        tx.phase4(rb)
    return out


@pytest.mark.parametrize("target, expected", [
    ("ARGS", [("ARGS:a", b"1"), ("ARGS:B", b"two"), ("ARGS:a", b"3")]),
    ("ARGS:a", [("ARGS:a", b"1"), ("ARGS:a", b"3")]),
    ("ARGS:b", [("ARGS:B", b"two")]),
    ("ARGS:/^[ab]$/", [("ARGS:a", b"1"), ("ARGS:B", b"two"), ("ARGS:a", b"3")]),
    ("ARGS|!ARGS:a", [("ARGS:B", b"two")]),
    ("ARGS|!ARGS:/^a/", [("ARGS:B", b"two")]),
    ("ARGS_NAMES", [("ARGS_NAMES:a", b"a"), ("ARGS_NAMES:B", b"B"), ("ARGS_NAMES:a", b"a")]),
    ("ARGS_GET_NAMES", [("ARGS_GET_NAMES:a", b"a"), ("ARGS_GET_NAMES:B", b"B"),
                        ("ARGS_GET_NAMES:a", b"a")]),
    ("&ARGS", [("ARGS", b"3")]),
    ("&ARGS:a", [("ARGS:a", b"2")]),
    ("&ARGS:zz", [("ARGS:zz", b"0")]),
    ("ARGS:zz", []),
    ("REQUEST_HEADERS:User-Agent", [("REQUEST_HEADERS:user-agent", b"UA/1")]),
    ("REQUEST_HEADERS:x-dup", [("REQUEST_HEADERS:x-dup", b"1"), ("REQUEST_HEADERS:x-dup", b"2")]),
    ("&REQUEST_HEADERS:X-Dup", [("REQUEST_HEADERS:X-Dup", b"2")]),
    ("REQUEST_HEADERS_NAMES:/^x-/", [("REQUEST_HEADERS_NAMES:x-dup", b"x-dup"),
                                     ("REQUEST_HEADERS_NAMES:x-dup", b"x-dup")]),
    ("REQUEST_COOKIES", [("REQUEST_COOKIES:sid", b"abc"), ("REQUEST_COOKIES:Theme", b"dark")]),
    ("REQUEST_COOKIES_NAMES", [("REQUEST_COOKIES_NAMES:sid", b"sid"),
                               ("REQUEST_COOKIES_NAMES:Theme", b"Theme")]),
    ("REQUEST_URI", [("REQUEST_URI", URI)]),
    ("REQUEST_URI_RAW", [("REQUEST_URI_RAW", URI)]),
    ("REQUEST_FILENAME", [("REQUEST_FILENAME", b"/dir/Index.php")]),
    ("REQUEST_BASENAME", [("REQUEST_BASENAME", b"Index.php")]),
    ("QUERY_STRING", [("QUERY_STRING", b"a=1&B=two&a=3")]),
    ("REQUEST_LINE", [("REQUEST_LINE", b"GET " + URI + b" HTTP/1.1")]),
    ("REQUEST_METHOD", [("REQUEST_METHOD", b"GET")]),
    ("REQUEST_PROTOCOL", [("REQUEST_PROTOCOL", b"HTTP/1.1")]),
    ("REMOTE_ADDR", [("REMOTE_ADDR", b"10.0.0.1")]),
    ("REMOTE_PORT", [("REMOTE_PORT", b"5555")]),
    ("SERVER_PORT", [("SERVER_PORT", b"80")]),
    ("SERVER_NAME", [("SERVER_NAME", b"example.com")]),
    ("UNIQUE_ID", [("UNIQUE_ID", b"rid-1")]),
    ("ARGS_COMBINED_SIZE", [("ARGS_COMBINED_SIZE", b"8")]),  # names + values
    ("REQBODY_ERROR", [("REQBODY_ERROR", b"0")]),
    ("REQUEST_BODY", []),
    ("MULTIPART_STRICT_ERROR", []),
])
def test_request_variables(target, expected):
    assert values(target) == expected


def test_body_collections_from_the_body_processor():
    files = (FilePart(b"up", b"a.php", 12, b"text/plain"),)
    result = BodyResult(args=((b"p", b"1"),), files=files, flags={"MULTIPART_STRICT_ERROR": 1},
                        part_headers=((b"up", b"Content-Type: text/plain"),))
    from revproxy.firewall.seclang.engine import default_components
    comps = default_components()._replace(process_body=lambda *a, **k: result)
    hs = HEADERS + ((b"content-type", b"multipart/form-data; boundary=x"),)
    got = {}
    for t in ("ARGS_POST", "ARGS", "FILES", "FILES_NAMES", "FILES_SIZES", "FILES_COMBINED_SIZE",
              "MULTIPART_STRICT_ERROR", "MULTIPART_PART_HEADERS", "REQBODY_PROCESSOR",
              "REQUEST_BODY_LENGTH", "ARGS_POST_NAMES"):
        got[t] = values(t, uri=b"/?g=1", headers=hs, method=b"POST", body=b"x" * 7,
                        waf={"components": comps})
    assert got["ARGS_POST"] == [("ARGS_POST:p", b"1")]
    assert got["ARGS"] == [("ARGS:g", b"1"), ("ARGS:p", b"1")]
    assert got["FILES"] == [("FILES:up", b"a.php")]
    assert got["FILES_NAMES"] == [("FILES_NAMES:up", b"up")]
    assert got["FILES_SIZES"] == [("FILES_SIZES:up", b"12")]
    assert got["FILES_COMBINED_SIZE"] == [("FILES_COMBINED_SIZE", b"12")]
    assert got["MULTIPART_STRICT_ERROR"] == [("MULTIPART_STRICT_ERROR", b"1")]
    assert got["MULTIPART_PART_HEADERS"] == [("MULTIPART_PART_HEADERS:up",
                                              b"Content-Type: text/plain")]
    assert got["REQBODY_PROCESSOR"] == [("REQBODY_PROCESSOR", b"MULTIPART")]
    assert got["REQUEST_BODY_LENGTH"] == [("REQUEST_BODY_LENGTH", b"7")]
    assert got["ARGS_POST_NAMES"] == [("ARGS_POST_NAMES:p", b"p")]


def test_xml_xpath_targets_read_the_parsed_document():
    hs = ((b"content-type", b"text/xml"),)
    w = waf('SecRequestBodyAccess On\n'
            'SecRule REQUEST_HEADERS:Content-Type "xml" "id:1,phase:1,pass,nolog,'
            'ctl:requestBodyProcessor=XML"\n'
            'SecRule XML:/* "@contains hello" "id:2,phase:2,log"\n'
            'SecRule XML://@* "@streq v" "id:3,phase:2,log"\n')
    tx = run(w, method=b"POST", headers=hs, body=b'<a k="v"><b>hello</b></a>')
    assert [m.rule_id for m in tx.matches] == [2, 3]


def test_response_variables():
    resp = (404, [(b"Content-Type", b"text/html; charset=x"), (b"X-A", b"1")], b"<h1>oops</h1>")
    assert values("RESPONSE_STATUS", phase=3, response=resp) == [("RESPONSE_STATUS", b"404")]
    assert values("RESPONSE_HEADERS:x-a", phase=3, response=resp) == [
        ("RESPONSE_HEADERS:x-a", b"1")]
    assert values("RESPONSE_CONTENT_TYPE", phase=3, response=resp) == [
        ("RESPONSE_CONTENT_TYPE", b"text/html; charset=x")]
    assert values("RESPONSE_BODY", phase=4, response=resp) == [("RESPONSE_BODY",
                                                                  b"<h1>oops</h1>")]
    assert values("STATUS_LINE", phase=3, response=resp) == [("STATUS_LINE", b"HTTP/1.1 404")]


def test_response_body_only_for_inspected_mime_types():
    resp = (200, [(b"content-type", b"image/png")], b"\x89PNG")
    assert values("RESPONSE_BODY", phase=4, response=resp) == []


def test_tx_collection_whole_regex_and_count():
    w = waf('SecAction "id:1,phase:1,pass,nolog,setvar:tx.ab=1,setvar:tx.ac=2,setvar:tx.b=3"\n'
            'SecRule TX:/^a/ "@ge 1" "id:2,phase:1,pass,nolog,setvar:tx.n=+1"\n'
            'SecRule &TX:/^a/ "@eq 2" "id:3,phase:1,log"\n'
            'SecRule &TX:nope "@eq 0" "id:4,phase:1,log"\n')
    tx = run(w)
    assert tx.variables["n"] == b"2" and [m.rule_id for m in tx.matches] == [3, 4]


def test_time_variables_use_the_injected_clock():
    import time
    t = time.mktime((2024, 3, 9, 10, 11, 12, 0, 0, -1))
    got = values("TIME_YEAR", waf={"clock": lambda: t})
    assert got == [("TIME_YEAR", b"2024")]
    assert values("TIME_EPOCH", waf={"clock": lambda: t}) == [("TIME_EPOCH", b"%d" % t)]


def test_rule_collection_exposes_the_current_rule():
    w = waf("SecRule RULE:id \"@eq 5\" \"id:5,phase:1,log,msg:'hi'\"\n")
    assert [m.rule_id for m in run(w).matches] == [5]


@pytest.mark.parametrize("raw, expected", [
    (b"/a/b?c=d", (b"/a/b?c=d", b"/a/b", b"c=d")),
    (b"http://h:1/x?y", (b"/x?y", b"/x", b"y")),
    (b"https://h", (b"/", b"/", b"")),
    (b"/p#frag?no", (b"/p", b"/p", b"")),
    (b"*", (b"*", b"*", b"")),
])
def test_split_target(raw, expected):
    assert split_target(raw) == expected


_KEYS = st.text(alphabet="abcM_S\u00e9", max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([rb"^msc_", rb"_s", rb"a$", rb"[\xe9]", rb"^$"]),
       st.lists(st.lists(_KEYS, max_size=8), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=10))
def test_key_matcher_selects_what_a_search_per_key_selects(pattern, stores, memo_max):
    """KeyMatcher's remembered answer equals searching every key, store after store, even
    when its memo overflows and is cleared."""
    rx = re.compile(pattern, re.IGNORECASE)
    keep = KeyMatcher(rx, memo_max)
    for keys in stores:
        store = dict.fromkeys(keys, b"v")
        yes = keep.matching(store)
        assert [k for k in store if k in yes] == \
            [k for k in store if rx.search(k.encode("latin-1")) is not None]


_EXCL = st.one_of(st.sampled_from(["ARGS", "REQUEST_COOKIES"]).map(lambda n: (n, None, None)),
                  st.tuples(st.just("ARGS"), _KEYS, st.none()),
                  st.tuples(st.just("ARGS"), st.none(), st.sampled_from(["^a", "b$", "_"])))


@settings(max_examples=300, deadline=None)
@given(st.lists(_KEYS, max_size=8), st.lists(_EXCL, max_size=4))
def test_drop_excluded_removes_what_each_exclusion_removes(keys, specs):
    """drop_excluded (one set for the keys, a search per regex) keeps exactly the
    entries no exclusion's ``Target.excludes`` removes."""
    excl = []
    for name, key, rx in specs:
        regex = re.compile(rx.encode(), re.IGNORECASE) if rx is not None else None
        k = key.lower() if key is not None else None
        excl.append(Target(name, k, regex, False, "!" + name))
    entries = [(k.lower().encode("utf-8"), "ARGS:" + k, b"v", k.encode("utf-8"))
               for k in keys]
    mine = [x for x in excl if x.name == "ARGS"]
    assert drop_excluded(entries, mine) == \
        [e for e in entries if not any(x.excludes("ARGS", e[0]) for x in excl)]


def _counting_components(calls):

    from revproxy.firewall.seclang.engine import default_components

    comps = default_components()
    parse = comps.process_body

    def process_body(*args, **kw):
        calls.append(args[1])
        return parse(*args, **kw)
    return comps._replace(process_body=process_body)


def test_the_body_is_parsed_when_a_rule_first_reads_it():
    """The intake defers the parse: a phase whose rules read nothing of the body never
    parses it (nor frees what a parse builds); the first read parses it once."""
    calls = []
    quiet = waf('SecRuleEngine On\nSecRequestBodyAccess On\n'
                'SecRule REQUEST_METHOD "@streq PUT" "id:1,phase:2,pass,log"',
                components=_counting_components(calls))
    form = ((b"content-type", b"application/x-www-form-urlencoded"),)
    tx = run(quiet, method=b"POST", headers=form, body=b"a=1&b=2")
    assert calls == [] and tx.vars.has_body and tx.vars.body_parser == "URLENCODED"
    assert list(tx.vars.body.args) == [(b"a", b"1"), (b"b", b"2")] and calls == [b"a=1&b=2"]
    assert tx.vars.body.args and len(calls) == 1  # parsed once
    reads = waf('SecRuleEngine On\nSecRequestBodyAccess On\n'
                'SecRule ARGS:b "@streq 2" "id:1,phase:2,deny,status:403"',
                components=_counting_components(calls))
    assert run(reads, method=b"POST", headers=form, body=b"a=1&b=2").interruption.status \
        == 403
    assert len(calls) == 2
    tx = run(reads, method=b"GET")
    assert not tx.vars.has_body and len(calls) == 2
