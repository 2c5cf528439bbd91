"""What a transaction keeps instead of recomputing: captures into TX:0-9, collections
until the body or the response arrives, kept values read by the prefilter without a call
(Chains._read) - each against the plain computation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.api import Match
from revproxy.firewall.seclang.variables import Variables
from tests.unit.firewall.seclang_helpers import ids, run, view, waf


def _reference_capture(tx, m):
    caps = m.captures or (m.data,)
    for i in range(10):
        if i < len(caps) and caps[i] is not None:
            tx[str(i)] = caps[i]
        else:
            tx.pop(str(i), None)


_TX = st.dictionaries(st.sampled_from([str(i) for i in range(12)] + ["x"]),
                      st.sampled_from([b"a", b"b"]), max_size=8)


@settings(max_examples=300, deadline=None)
@given(_TX, st.binary(max_size=3),
       st.one_of(st.none(), st.lists(st.one_of(st.none(), st.binary(max_size=2)),
                                     max_size=12).map(tuple)))
def test_capture_sets_and_clears_what_the_reference_does(tx, data, captures):
    w = waf('SecRule ARGS "@rx a" "id:1,phase:1,pass,capture"')
    t = w.transaction(view(b"/"))
    t.stores["tx"] = dict(tx)
    m = Match(data, captures)
    want = dict(tx)
    _reference_capture(want, m)
    t._capture(m)
    assert t.stores["tx"] == want


RULES = r"""
SecRequestBodyAccess On
SecResponseBodyAccess On
SecRule ARGS|ARGS_NAMES "@rx ." "id:1,phase:1,pass,log,setvar:tx.p1=+1"
SecRule ARGS|ARGS_NAMES|ARGS_POST|FILES_NAMES "@rx ." "id:2,phase:2,pass,log,setvar:tx.p2=+1"
SecRule &ARGS "@ge 0" "id:3,phase:2,pass,log,setvar:'tx.n=%{MATCHED_VAR}'"
SecRule ARGS "@rx b" "id:4,phase:3,pass,log,setvar:tx.p3=+1"
SecRule ARGS_NAMES "@rx c" "id:5,phase:4,pass,log,setvar:tx.p4=+1"
SecRule ARGS "@rx ." "id:6,phase:5,pass,log,setvar:tx.p5=+1"
"""


@settings(max_examples=100, deadline=None)
@given(query=st.sampled_from([b"", b"?a=1", b"?b=c&c=b"]),
       body=st.sampled_from([None, b"", b"x=b", b"c=1&d=2"]))
def test_kept_collections_match_recomputing_them_on_every_read(query, body):
    """Collections are kept from their first read (phase 1 included) until the body or
    the response arrives: the logs and TX are those of a load where every read computes
    them again."""
    w = waf(RULES)
    headers = ((b"content-type", b"application/x-www-form-urlencoded"),)
    kw = dict(uri=b"/p" + query, headers=headers, body=body,
              response=(200, [(b"content-type", b"text/html")], b"ok"))
    a = run(w, **kw)
    collection, indexed = Variables.collection, Variables._indexed

    def fresh_collection(self, name):
        self._colls.pop(name, None)
        return collection(self, name)

    def fresh_indexed(self, name):
        self._index.pop(name, None)
        self._colls.pop(name, None)
        return indexed(self, name)
    mp = pytest.MonkeyPatch()
    mp.setattr(Variables, "collection", fresh_collection)
    mp.setattr(Variables, "_indexed", fresh_indexed)
    try:
        b = run(w, **kw)
    finally:
        mp.undo()
    assert ids(a) == ids(b) and a.variables == b.variables
    assert "ARGS" in a.vars._colls


def test_the_prefilter_reads_kept_values_through_the_same_dict():
    """Chains reads Variables' kept values by cache key (the same dict object)."""
    w = waf('SecRule ARGS "@rx x" "id:1,phase:1,pass,log"')
    tx = w.transaction(view(b"/?a=x"))
    assert tx.chains._kept is tx.vars._vcache
    tx.phase1()
    assert [m.rule_id for m in tx.matches] == [1]


@pytest.mark.parametrize("targets", ["RESPONSE_BODY|REQUEST_METHOD", "RESPONSE_BODY"])
def test_a_response_body_read_in_phase_3_does_not_hide_the_body_from_phase_4(targets):
    """Phase 3 reads RESPONSE_BODY before the body arrived (nothing: a rule's read, or the
    phase start's check of its sources, cleanskip.py); phase 4 must see the body, not that
    kept empty value."""
    w = waf(r"""
SecResponseBodyAccess On
SecRule %s "@rx secret" "id:1,phase:3,pass,log"
SecRule RESPONSE_BODY "@rx secret" "id:2,phase:4,deny,log"
""" % targets)
    tx = run(w, response=(200, [(b"content-type", b"text/html")], b"the secret"))
    assert ids(tx) == [2]
    assert tx.interruption is not None and tx.interruption.rule_id == 2
