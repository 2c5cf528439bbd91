"""Rules folded at load (revproxy.firewall.seclang.fold): what folds, what stays, and the
same verdicts and TX values as the unfolded rules on requests that take every path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import delta, fold
from revproxy.firewall.seclang.delta import Delta
from tests.unit.firewall.seclang_helpers import ids, run, waf

RULES = r"""
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.paranoia=1,setvar:tx.limit=5"
SecRule &TX:blocking "@eq 0" "id:2,phase:1,pass,nolog,setvar:tx.blocking=%{tx.paranoia}"
SecRule REQUEST_URI "@beginsWith /strict" "id:3,phase:1,pass,nolog,setvar:tx.paranoia=2"
SecRule REQUEST_URI "@beginsWith /off" "id:4,phase:1,pass,nolog,ctl:ruleRemoveById=6"
SecRule REQUEST_URI "@beginsWith /stop" "id:5,phase:1,pass,nolog,ctl:ruleEngine=Off"
SecRule TX:blocking "@lt 2" "id:6,phase:1,pass,nolog,skipAfter:END-PL2"
SecRule ARGS "@contains pl2" "id:7,phase:1,deny,status:403,log"
SecMarker "END-PL2"
SecRule TX:paranoia "@lt 2" "id:8,phase:2,pass,nolog,skipAfter:END-P"
SecRule ARGS "@contains strict" "id:9,phase:2,deny,status:403,log"
SecMarker "END-P"
SecRule ARGS "@contains bad" "id:10,phase:2,pass,log,setvar:tx.score=+%{tx.limit}"
SecRule TX:score "@ge 5" "id:11,phase:2,deny,status:403,log"
"""

REQUESTS = [b"/", b"/?a=pl2", b"/?a=strict", b"/strict?a=strict", b"/off?a=pl2",
            b"/stop?a=bad", b"/?a=bad", b"/strict?a=bad", b"/off?a=bad&b=pl2"]


def _folded_and_plain(rules: str):
    """(the rules loaded with folding, the same rules loaded without it)."""
    folded = waf(rules)
    saved = fold.ENABLED
    fold.ENABLED = False
    try:
        plain = waf(rules)
    finally:
        fold.ENABLED = saved
    return folded, plain


@pytest.fixture(scope="module")
def pair():
    return _folded_and_plain(RULES)



def test_constant_rules_fold_request_dependent_ones_stay(pair):
    folded, plain = pair
    assert plain.folded == 0
    kept = {r.id for lst in folded.run_phases.values() for r in lst
            if r.marker is None and r.delta is None}
    deltas = [d for lst in folded.run_phases.values() for d in lst if isinstance(d, Delta)]
    folded_ids = {i for d in deltas for i in d.ids}
    assert {1, 2}.issubset(folded_ids)  # constants, and a default from a constant
    assert {3, 4, 5, 9, 10, 11}.issubset(kept)  # they read the request or a score
    # rule 6 reads tx.blocking, which rule 3 cannot change: folded, and it skips rule 7
    assert 6 in folded_ids and 7 not in {r.id for r in folded.run_phases[1]
                                         if r.marker is None and r.delta is None}
    # rule 8 reads tx.paranoia, which rule 3 may set: kept
    assert 8 in kept


@pytest.mark.parametrize("uri", REQUESTS)
def test_same_verdict_and_logs_as_unfolded(pair, uri):
    folded, plain = pair
    a, b = run(folded, uri), run(plain, uri)
    assert ids(a) == ids(b)
    assert a.interruption == b.interruption
    assert a.variables == b.variables


def test_a_removal_naming_a_folded_rule_leaves_the_folded_list(pair):
    """/off removes rule 6 (folded): rule 7 must run again, as without folding."""
    folded, plain = pair
    tx = run(folded, b"/off?a=pl2")
    assert ids(tx) == [7] and tx.interruption is not None
    assert ids(run(folded, b"/?a=pl2")) == []


def test_engine_off_stops_where_the_unfolded_rules_stop(pair):
    folded, _ = pair
    tx = run(folded, b"/stop?a=bad")
    assert ids(tx) == [] and tx.interruption is None


def test_a_kept_skip_makes_what_it_skips_unknown():
    """Rule 22 (request-dependent) may jump over rule 23: rule 24 reads what 23 sets, so
    it cannot fold, and both paths give the unfolded result."""
    rules = r"""
SecAction "id:21,phase:1,pass,nolog,setvar:tx.level=1"
SecRule REQUEST_URI "@beginsWith /jump" "id:22,phase:1,pass,nolog,skipAfter:LAND"
SecAction "id:23,phase:1,pass,nolog,setvar:tx.level=2"
SecMarker "LAND"
SecRule TX:level "@eq 1" "id:24,phase:1,deny,status:403,log"
"""
    folded = waf(rules)
    kept = {r.id for r in folded.run_phases[1] if r.marker is None and
            r.delta is None}
    assert 24 in kept and 22 in kept
    assert ids(run(folded, b"/jump")) == [24]
    assert ids(run(folded, b"/")) == []


def test_a_macro_named_write_makes_its_prefix_unknown():
    rules = r"""
SecAction "id:31,phase:1,pass,nolog,setvar:tx.h_a=1,setvar:tx.other=1"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:32,phase:1,pass,nolog,capture,setvar:'tx.h_%{tx.0}=0'"
SecRule TX:h_a "@eq 1" "id:33,phase:1,pass,log"
SecRule TX:other "@eq 1" "id:34,phase:1,pass,nolog,setvar:tx.seen=1"
"""
    folded = waf(rules)
    kept = {r.id for r in folded.run_phases[1] if r.marker is None and
            r.delta is None}
    assert 33 in kept and 34 not in kept
    assert ids(run(folded, b"/", headers=((b"a", b"x"),))) == []
    assert ids(run(folded, b"/")) == [33]


def test_engine_switched_off_by_a_failed_chain_stops_at_a_folded_match():
    """ctl:ruleEngine=Off applied by a chain that then fails: the phase stops at the next
    matching rule, here a folded SecAction, so rule 43 never logs (as unfolded)."""
    rules = r"""
SecRule REQUEST_URI "@beginsWith /half" "id:41,phase:1,pass,nolog,ctl:ruleEngine=Off,chain"
    SecRule ARGS:x "@streq never" "t:none"
SecAction "id:42,phase:1,pass,nolog,setvar:tx.a=1"
SecRule REQUEST_URI "@rx ." "id:43,phase:1,pass,log"
"""
    folded = waf(rules)
    assert any(isinstance(r, Delta) and 42 in r.ids for r in folded.run_phases[1])
    assert ids(run(folded, b"/half")) == []
    assert ids(run(folded, b"/")) == [43]


class _Ev:
    """The part of an Evaluator a Delta touches."""

    def __init__(self, tx):
        self.stores = {"tx": dict(tx)}
        self.vars = type("V", (), {"matched_var": b"", "matched_var_name": b""})()

    def state(self):
        return self.stores["tx"], self.vars.matched_var_name, self.vars.matched_var


_KEY = st.sampled_from("abcd")
_DELTA = st.builds(
    lambda sets, removes, matched, matches: Delta(
        sets, tuple(sorted(set(removes) - set(sets))), matched, [], matches),
    st.dictionaries(_KEY, st.sampled_from([b"0", b"1", b"x"]), max_size=3),
    st.lists(_KEY, max_size=3),
    st.one_of(st.none(), st.tuples(st.sampled_from([b"TX:a", b"TX:b"]),
                                   st.sampled_from([b"1", b"2"]))),
    st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEY, st.sampled_from([b"0", b"9"]), max_size=4),
       st.lists(_DELTA, min_size=1, max_size=5))
def test_merged_deltas_do_what_the_sequence_does(tx, deltas):
    """Delta.then: applying the merge equals applying each in turn; with the engine Off
    (stop before the first matching one) its stop_part equals the ones before it."""
    merged = deltas[0]
    for d in deltas[1:]:
        merged = merged.then(d)
    seq, one = _Ev(tx), _Ev(tx)
    for d in deltas:
        d.apply(seq)
    merged.apply(one)
    assert one.state() == seq.state()
    assert merged.matches == any(d.matches for d in deltas)
    if not merged.matches:
        return
    seq, one = _Ev(tx), _Ev(tx)
    for d in deltas:
        if d.matches:
            break
        d.apply(seq)
    if merged.stop_part is not None:
        merged.stop_part.apply(one)
    assert one.state() == seq.state()


def test_compacted_lists_keep_only_skipped_to_markers_and_merge_deltas():
    """After folding, markers no kept rule skips to are gone and the Deltas they
    separated are one; the verdicts are those of the unfolded rules (see above)."""
    rules = r"""
SecAction "id:51,phase:1,pass,nolog,setvar:tx.a=1"
SecMarker "UNUSED"
SecAction "id:52,phase:1,pass,nolog,setvar:tx.b=1"
SecRule REQUEST_URI "@beginsWith /jump" "id:53,phase:1,pass,nolog,skipAfter:LAND"
SecAction "id:54,phase:1,pass,nolog,setvar:tx.c=1"
SecMarker "LAND"
SecRule TX:c "@eq 1" "id:55,phase:1,pass,log"
"""
    folded = waf(rules)
    lst = folded.run_phases[1]
    assert [getattr(r, "marker", None) for r in lst if r.marker is not None] == ["LAND"]
    assert isinstance(lst[0], Delta) and lst[0].ids == (51, 52)
    assert ids(run(folded, b"/jump")) == []
    assert ids(run(folded, b"/")) == [55]


def test_a_chain_that_writes_then_fails_is_kept_with_its_writes():
    """Rule 2's first link sets tx.b, its second link fails: the chain does not match but
    tx.b is set (each link's actions run when that link matches), so rule 3 logs, as
    unfolded."""
    rules = r"""
SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecRule TX:a "@eq 1" "id:2,phase:1,pass,nolog,setvar:tx.b=5,chain"
    SecRule TX:a "@eq 2" ""
SecRule TX:b "@eq 5" "id:3,phase:1,pass,log"
"""
    folded, plain = _folded_and_plain(rules)
    a, b = run(folded, b"/"), run(plain, b"/")
    assert ids(a) == ids(b) == [3] and a.variables == b.variables


DEAD_HEADS = r"""
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.on=1"
SecRule &TX:MAX_ARGS "@eq 1" "id:2,phase:2,deny,status:403,log,chain"
    SecRule &ARGS "@gt %{tx.max_args}" ""
SecRule TX:on "@eq 0" "id:3,phase:1,pass,log,setvar:'tx.ua=%{REQUEST_HEADERS.User-Agent}',chain"
    SecRule REQUEST_HEADERS:User-Agent "@rx ." ""
SecRule TX:on "@eq 1" "id:4,phase:1,pass,log,chain"
    SecRule ARGS:a "@streq 1" ""
SecRule ARGS:set "@streq 1" "id:5,phase:1,pass,nolog,setvar:tx.late=1"
SecRule TX:late "@eq 1" "id:6,phase:2,pass,log,chain"
    SecRule ARGS:a "@streq 1" ""
"""


@pytest.mark.parametrize("uri", [b"/", b"/?a=1", b"/?a=1&b=2&c=3", b"/?set=1&a=1"])
def test_a_chain_whose_first_link_fails_on_the_known_state_is_dead(uri):
    """Rules 2 and 3 cannot pass their first link (tx.max_args is never set, tx.on is
    always 1: the CRS's optional limits, 901320's default collections), whatever their
    later links or first-link actions read: they are dropped at load. 4 passes its
    first link and 6 reads a variable a request sets: both stay. Same logs either way."""
    folded, plain = _folded_and_plain(DEAD_HEADS)
    kept = {r.id for lst in folded.run_phases.values() for r in lst
            if r.marker is None and r.delta is None}
    in_deltas = {i for lst in folded.run_phases.values() for d in lst
                 if isinstance(d, Delta) for i in d.ids}
    assert not {2, 3} & (kept | in_deltas) and {4, 5, 6} <= kept
    headers = ((b"user-agent", b"curl"),)
    a, b = run(folded, uri, headers=headers), run(plain, uri, headers=headers)
    assert ids(a) == ids(b) and a.variables == b.variables and \
        a.interruption == b.interruption


def test_merge_adjacent_joins_runs_of_deltas_and_keeps_only_markers_jumped_to():
    from types import SimpleNamespace as NS

    def rule(skip_after=None):
        return NS(marker=None, delta=None, skip_after=skip_after)

    def marker(name):
        return NS(marker=name, delta=None)
    guard = NS(marker=None, delta=True, guarded=True, jump="G")
    d1 = Delta({"a": b"1"}, (), None, [], False)
    d2 = Delta({"b": b"2"}, ("a",), (b"TX:b", b"2"), [], False)
    d3 = Delta({"c": b"3"}, (), None, [], False)
    r1, r2 = rule("KEEP"), rule()
    lst = [d1, d2, marker("DROP"), d3, r1, d1, marker("KEEP"), guard, marker("G"), d2, r2]
    memo: dict = {}
    out = delta.merge_adjacent(lst, memo)
    assert [getattr(x, "marker", None) for x in out if x.marker is not None] == ["KEEP", "G"]
    merged = out[0]
    assert isinstance(merged, Delta) and merged.sets == {"b": b"2", "c": b"3"} and \
        merged.removes == ("a",) and merged.matched == (b"TX:b", b"2")
    assert out[1:] == [r1, d1, lst[6], guard, lst[8], d2, r2]
    assert delta.merge_adjacent(lst, memo)[0] is merged  # one merged Delta per run


def test_a_folded_match_leaves_matched_var_for_the_next_rule():
    """Rule 2 matches on every request (a constant): folded, its Delta still sets
    MATCHED_VAR, which rule 3 (kept: it reads MATCHED_VAR) denies on."""
    rules = r"""
SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=seen"
SecRule TX:a "@streq seen" "id:2,phase:1,pass,nolog"
SecRule MATCHED_VAR "@streq seen" "id:3,phase:1,deny,status:403,log"
"""
    folded, plain = _folded_and_plain(rules)
    assert 2 in {i for lst in folded.run_phases.values() for d in lst
                 if isinstance(d, Delta) for i in d.ids}
    for w in (folded, plain):
        tx = run(w, b"/")
        assert ids(tx) == [3] and tx.interruption.status == 403


def test_a_phase_whose_list_is_one_update_applies_it_without_the_loop():
    from revproxy.firewall.seclang import phaseloop
    from tests.unit.firewall.seclang_helpers import ids, run, waf as load

    w = load('SecRuleEngine On\nSecAction "id:1,phase:3,pass,nolog,setvar:tx.out=7"\n'
             'SecRule TX:out "@eq 7" "id:2,phase:5,pass,log"')
    assert set(w.lone_deltas) == {3}
    seen = []
    original = phaseloop._loop

    def loop(ev, phase, *args):
        seen.append(phase)
        return original(ev, phase, *args)
    phaseloop._loop = loop
    try:
        tx = run(w, response=(200, [], b""))
    finally:
        phaseloop._loop = original
    assert 3 not in seen and ids(tx) == [2] and tx.stores["tx"]["out"] == b"7"
