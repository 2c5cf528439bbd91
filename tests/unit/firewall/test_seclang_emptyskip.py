"""Rules that can only read empty collections, left out of a phase's list at its start
(revproxy.firewall.seclang.emptyskip): the same logs, verdicts and TX values as without it
on requests with and without arguments, cookies, headers, files, bodies and responses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import cleanskip, emptyskip
from tests.unit.firewall.seclang_helpers import ids, run, view, waf

# Every rule matches as soon as it gets one value (unconditionalMatch, or a negated
# operator that fails on everything), so a wrongly skipped rule shows in the log.
RULES = r"""
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^text/xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS "@unconditionalMatch" "id:10,phase:1,pass,log,setvar:tx.a=+1"
SecRule ARGS_GET_NAMES|REQUEST_COOKIES "!@rx ^never$" "id:11,phase:1,pass,log"
SecRule REQUEST_HEADERS:X-Probe|REQUEST_COOKIES:/^s/ "@unconditionalMatch" "id:12,phase:1,pass,log"
SecRule REQUEST_COOKIES_NAMES|!REQUEST_COOKIES_NAMES:sid "@unconditionalMatch" "id:13,phase:1,pass,log"
SecRule REQUEST_METHOD "@rx ." "id:14,phase:1,pass,log,chain"
    SecRule ARGS_GET "@unconditionalMatch" "setvar:tx.c=+1"
SecRule REQUEST_URI "@unconditionalMatch" "id:15,phase:1,pass,log,setvar:tx.d=+1,chain"
    SecRule REQUEST_COOKIES "@unconditionalMatch" "setvar:tx.d=+10"
SecRule REQUEST_URI "@rx ^/(.)" "id:16,phase:1,pass,log,capture,chain"
    SecRule ARGS_GET_NAMES "@unconditionalMatch"
SecRule TX:1 "@unconditionalMatch" "id:17,phase:1,pass,log"
SecRule REQUEST_METHOD "@rx ." "id:18,phase:2,pass,log,chain"
    SecRule REQUEST_URI "@rx ." "chain"
    SecRule FILES "@unconditionalMatch" "setvar:tx.e=+1"
SecRule ARGS "@unconditionalMatch" "id:20,phase:2,pass,log,setvar:tx.a=+1,chain"
    SecRule MATCHED_VARS "@unconditionalMatch" "setvar:tx.b=+1"
SecRule ARGS_POST|FILES|FILES_NAMES "@unconditionalMatch" "id:21,phase:2,pass,log"
SecRule XML:/* "@unconditionalMatch" "id:22,phase:2,pass,log"
SecRule REQUEST_BODY "@unconditionalMatch" "id:23,phase:2,pass,log"
SecRule MULTIPART_PART_HEADERS "@unconditionalMatch" "id:24,phase:2,pass,log"
SecRule REQUEST_BODY|ARGS_NAMES "!@streq never" "id:25,phase:2,pass,log,skipAfter:END2"
SecRule REQUEST_URI "@unconditionalMatch" "id:26,phase:2,pass,log"
SecMarker END2
SecRule &ARGS "@eq 0" "id:27,phase:2,pass,log"
SecRule RESPONSE_HEADERS:X-Back "@unconditionalMatch" "id:30,phase:3,pass,log"
SecRule RESPONSE_BODY "@unconditionalMatch" "id:40,phase:4,pass,log"
"""

MULTIPART = (b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
             b"Content-Type: text/plain\r\n\r\nhi\r\n--b--\r\n")
REQUESTS = [
    dict(uri=b"/"),
    dict(uri=b"/?q=1"),
    dict(uri=b"/", headers=((b"cookie", b"sid=1"),)),
    dict(uri=b"/", headers=((b"cookie", b"theme=1"),)),
    dict(uri=b"/", headers=((b"x-probe", b""),)),
    dict(uri=b"/", method=b"POST", body=b"a=1",
         headers=((b"content-type", b"application/x-www-form-urlencoded"),)),
    dict(uri=b"/", method=b"POST", body=b"",
         headers=((b"content-type", b"application/x-www-form-urlencoded"),)),
    dict(uri=b"/", method=b"POST", body=b'{"k": "v"}',
         headers=((b"content-type", b"application/json"),)),
    dict(uri=b"/", method=b"POST", body=b"<a><b>t</b></a>",
         headers=((b"content-type", b"text/xml"),)),
    dict(uri=b"/", method=b"POST", body=MULTIPART,
         headers=((b"content-type", b"multipart/form-data; boundary=b"),)),
    dict(uri=b"/", response=(200, [(b"content-type", b"text/html")], b"<p>")),
    dict(uri=b"/", response=(200, [(b"content-type", b"text/html"), (b"x-back", b"1")],
                             b"")),
    dict(uri=b"/", response=(200, [(b"content-type", b"image/png")], b"png")),
]


def _pair(text):
    saved = emptyskip.ENABLED, cleanskip.ENABLED
    cleanskip.ENABLED = False  # emptyskip on its own (cleanskip.py has its own tests)
    try:
        skipping = waf(text)
        emptyskip.ENABLED = False
        plain = waf(text)
    finally:
        emptyskip.ENABLED, cleanskip.ENABLED = saved
    return skipping, plain


@pytest.fixture(scope="module")
def pair():
    return _pair(RULES)


def _same(a, b):
    assert ids(a) == ids(b)
    assert a.interruption == b.interruption
    assert a.variables == b.variables


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: repr(r)[:60])
def test_same_logs_and_tx_as_without_the_skip(pair, req):
    skipping, plain = pair
    _same(run(skipping, **req), run(plain, **req))


def test_an_empty_request_runs_shorter_lists(pair):
    """On a bare GET the rules reading arguments, cookies, X-Probe, files, XML and the
    bodies are not in the lists; the plain load has no plan at all."""
    skipping, plain = pair
    assert not plain.empty_plans and set(skipping.empty_plans) == {1, 2, 3, 4}
    tx = skipping.transaction(view(b"/"))
    rules, markers = skipping.empty_plans[2].lists(tx.vars)
    kept = {r.id for r in rules if r.marker is None and r.delta is None}
    # 25 is out, and with it the only jump to END2: the marker goes too (delta.merge_adjacent)
    assert kept == {26, 27} and markers == {} and "END2" not in [r.marker for r in rules]
    assert ids(run(skipping, b"/")) == [26, 27]


def test_a_chain_stops_at_a_later_link_with_nothing_to_read(pair):
    """14 and 18 leave the lists of a bare GET at their second and third links; 15 and 16
    stay (their first links set TX), and all four run when the later links have values."""
    skipping, _ = pair
    tx = skipping.transaction(view(b"/"))
    one = {r.id for r in skipping.empty_plans[1].lists(tx.vars)[0] if r.marker is None}
    two = {r.id for r in skipping.empty_plans[2].lists(tx.vars)[0] if r.marker is None}
    assert {15, 16} <= one and 14 not in one and 18 not in two
    tx = skipping.transaction(view(b"/p?a=1"))
    one = {r.id for r in skipping.empty_plans[1].lists(tx.vars)[0] if r.marker is None}
    assert {14, 15, 16} <= one
    assert ids(run(skipping, b"/p?a=1"))[:5] == [10, 11, 14, 16, 17]


MATCHED_RULES = r"""
SecRuleEngine DetectionOnly
SecRule REQUEST_METHOD "@rx ^GET$" "id:1,phase:1,pass,log,chain"
    SecRule ARGS_GET "@unconditionalMatch"
SecRule MATCHED_VAR "@streq GET" "id:2,phase:1,pass,log"
"""


def test_chains_are_kept_whole_where_a_rule_reads_matched_var():
    """A first link reading MATCHED_VAR sees what an earlier chain's first link matched,
    even when that chain failed: no chain is cut short in such a rule set."""
    skipping, plain = _pair(MATCHED_RULES)
    assert ids(run(plain, b"/")) == [2]
    assert ids(run(skipping, b"/")) == [2]
    saved = emptyskip.chains_safe
    emptyskip.chains_safe = lambda rules: True  # what the guard prevents
    try:
        unsafe, _ = _pair(MATCHED_RULES)
    finally:
        emptyskip.chains_safe = saved
    assert ids(run(unsafe, b"/")) == []


def test_a_phase_with_a_counted_skip_has_no_plan():
    skipping, _ = _pair(RULES + 'SecRule REQUEST_URI "@rx x" "id:50,phase:2,pass,skip:1"\n')
    assert 2 not in skipping.empty_plans and 1 in skipping.empty_plans


_PAIR = _pair(RULES)


@settings(max_examples=150, deadline=None)
@given(query=st.sampled_from([b"", b"?a=1", b"?a=", b"?=x"]),
       cookie=st.sampled_from([None, b"sid=1", b"s=1; t=2", b""]),
       probe=st.booleans(),
       body=st.sampled_from([None, (b"application/x-www-form-urlencoded", b"k=v"),
                             (b"application/x-www-form-urlencoded", b""),
                             (b"application/json", b"[1]"), (b"text/xml", b"<a/>"),
                             (b"text/plain", b"raw"),
                             (b"multipart/form-data; boundary=b", MULTIPART)]),
       response=st.sampled_from([None, (200, [(b"content-type", b"text/html")], b"x"),
                                 (404, [(b"x-back", b"")], b"")]))
def test_random_requests_match_the_unskipped_rules(query, cookie, probe, body, response):
    """Hypothesis over the shapes above, each collection present or empty."""
    skipping, plain = _PAIR
    headers = []
    if cookie is not None:
        headers.append((b"cookie", cookie))
    if probe:
        headers.append((b"x-probe", b"1"))
    kw = dict(uri=b"/p" + query, response=response)
    if body is not None:
        headers.append((b"content-type", body[0]))
        kw.update(method=b"POST", body=body[1])
    kw["headers"] = tuple(headers)
    _same(run(skipping, **kw), run(plain, **kw))
