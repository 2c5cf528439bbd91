"""Guarded runs (revproxy.firewall.seclang.guard): score rules taken as one TX update when
their inputs hold the expected values, and the same verdicts, logs and TX values as
without guards on every path (scores raised, rules removed, targets removed, engine Off,
detect mode)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import guard
from revproxy.firewall.seclang.guard import Guarded
from tests.unit.firewall.seclang_helpers import ids, run, waf

RULES = r"""
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.threshold=5,setvar:tx.pl=1"
SecRule REQUEST_URI "@beginsWith /rm" "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=12"
SecRule REQUEST_URI "@beginsWith /rt" "id:3,phase:1,pass,nolog,ctl:ruleRemoveTargetById=18;TX:done"
SecRule REQUEST_URI "@beginsWith /off" "id:4,phase:1,pass,nolog,ctl:ruleEngine=Off,chain"
    SecRule ARGS:x "@streq never" "t:none"
SecRule ARGS "@contains early" "id:6,phase:1,pass,nolog,setvar:tx.score_pl1=+1"
SecRule TX:pl "@ge 1" "id:5,phase:1,pass,nolog,setvar:'tx.seen=+%{tx.score_pl1}'"
SecRule REQUEST_URI "@rx ." "id:7,phase:1,pass,log"
SecRule ARGS "@contains bad" "id:10,phase:2,pass,log,setvar:tx.score_pl1=+5"
SecRule ARGS "@contains meh" "id:11,phase:2,pass,log,setvar:tx.score_pl1=+2"
SecRule TX:pl "@ge 1" "id:12,phase:2,pass,nolog,setvar:'tx.score=+%{tx.score_pl1}'"
SecRule TX:pl "@ge 2" "id:17,phase:2,pass,nolog,setvar:'tx.score=+%{tx.score_pl2}'"
SecRule TX:score "@ge %{tx.threshold}" "id:13,phase:2,deny,status:403,log,msg:'score %{tx.score}'"
SecRule TX:score "@eq 0" "id:14,phase:5,pass,nolog,skipAfter:END-REPORT"
SecAction "id:15,phase:5,pass,log,msg:'report %{tx.score}'"
SecMarker END-REPORT
SecRule TX:score "@ge 0" "id:16,phase:5,pass,nolog,setvar:tx.done=1"
SecRule &TX:done "@eq 0" "id:18,phase:5,pass,nolog,setvar:tx.fresh=1"
"""

URIS = [b"/", b"/?a=bad", b"/?a=meh", b"/?a=early", b"/rm", b"/rm?a=meh", b"/rt",
        b"/rt?a=bad", b"/off", b"/off?a=early", b"/?a=meh&b=early", b"/rm?a=bad"]


def _pair(text, **kw):
    guarded = waf(text, **kw)
    saved = guard.ENABLED
    guard.ENABLED = False
    try:
        plain = waf(text, **kw)
    finally:
        guard.ENABLED = saved
    return guarded, plain


@pytest.fixture(scope="module")
def pair():
    return _pair(RULES)


def _guards(w):
    return {p: [g for g in lst if isinstance(g, Guarded)] for p, lst in w.run_phases.items()}


def test_score_rules_are_guarded_and_the_plain_load_has_none(pair):
    guarded, plain = pair
    assert plain.guarded == 0 and not any(_guards(plain).values())
    g = _guards(guarded)
    assert [x.ids for x in g[1]] == [frozenset({5})]
    # (17 cannot pass its first link, tx.pl is 1: fold.py leaves it out, dead)
    assert [x.ids for x in g[2]] == [frozenset({12, 13})]
    assert 17 not in {r.id for r in guarded.run_phases[2]
                      if r.marker is None and r.delta is None}
    assert g[2][0].keys == ("pl", "score", "score_pl1", "threshold")
    assert [(x.ids, x.jump) for x in g[5]] == [(frozenset({14}), "END-REPORT"),
                                              (frozenset({16, 18}), None)]


def _same(a, b):
    assert ids(a) == ids(b)
    assert [m.msg for m in a.matches] == [m.msg for m in b.matches]
    assert a.interruption == b.interruption
    assert a.variables == b.variables
    assert (a.vars.matched_var_name, a.vars.matched_var) == \
        (b.vars.matched_var_name, b.vars.matched_var)


@pytest.mark.parametrize("uri", URIS)
def test_same_verdict_logs_and_tx_as_without_guards(pair, uri):
    guarded, plain = pair
    _same(run(guarded, uri), run(plain, uri))


def test_a_quiet_request_takes_the_updates_instead_of_the_rules(pair, monkeypatch):
    """On "/" every guard holds: rules 5, 12, 17, 13, 14 and 16 are not evaluated."""
    guarded, _ = pair
    seen = []
    from revproxy.firewall.seclang.evaluate import Evaluator
    orig = Evaluator._eval_general

    def spy(self, rule, detect):
        seen.append(rule.id)
        return orig(self, rule, detect)
    monkeypatch.setattr(Evaluator, "_eval_general", spy)
    for r in guarded.all_rules:
        monkeypatch.setattr(r, "fast", None)  # every rule through _eval_general
    tx = run(guarded, b"/")
    assert not {5, 12, 17, 13, 14, 16} & set(seen)
    assert tx.variables["score"] == b"0" and tx.variables["done"] == b"1"
    seen.clear()
    run(guarded, b"/?a=bad")
    assert {12, 13} <= set(seen) and 17 not in seen  # (dead: fold.py)


@pytest.mark.parametrize("modes", [{12: "detect"}, {13: "detect"}, {16: "detect"},
                                   {18: "detect"}, {7: "off"},
                                   {14: "off"}, {5: "detect"}])
def test_modes_change_nothing_either(modes):
    guarded, plain = _pair(RULES, modes=modes)
    for uri in URIS:
        _same(run(guarded, uri), run(plain, uri))


@settings(max_examples=150, deadline=None)
@given(prefix=st.sampled_from(["/", "/rm", "/rt", "/off"]),
       args=st.lists(st.sampled_from(["bad", "meh", "early", "x"]), max_size=3),
       engine=st.sampled_from(["On", "DetectionOnly"]))
def test_random_requests_match_the_unguarded_rules(prefix, args, engine):
    """Hypothesis over the paths above, with the engine On or DetectionOnly."""
    guarded, plain = _PAIRS[engine]
    uri = (prefix + "?" + "&".join("a%d=%s" % (i, v) for i, v in enumerate(args))).encode()
    _same(run(guarded, uri), run(plain, uri))


_PAIRS = {e: _pair(RULES.replace("SecRuleEngine On", "SecRuleEngine " + e))
          for e in ("On", "DetectionOnly")}
