"""The evaluation shortcuts give what the general loop gives: one-key TX rules
(fastpath.py), removals kept as a set of ids, REQUEST_BODY kept until the body arrives."""

from __future__ import annotations

import pytest

from revproxy.firewall.seclang import fastpath
from tests.unit.firewall.seclang_helpers import ids, run, waf


def _rule(w, rid):
    return next(r for r in w.all_rules if r.id == rid)


@pytest.mark.parametrize("rule, matched", [
    ('TX:level "@lt 3"', True),
    ('TX:level "@lt 2"', False),
    ('TX:level "!@lt 2"', True),
    ('TX:LEVEL "@ge 2"', True),            # keys compare case-insensitively
    ('TX:level "@eq %{tx.two}"', True),    # macro argument: the operator itself
    ('TX:level "@streq 2"', True),
    ('TX:missing "!@eq 5"', False),        # absent: no value, even negated
    ('&TX:missing "@eq 0"', True),
    ('&TX:level "@eq 1"', True),
    ('TX:padded "@eq 7"', True),           # leading blanks, trailing text: std::stoi
    ('TX:level "@eq 2" "t:length', False),  # transformed: length of b"2" is 1
])
def test_one_key_rules_take_the_fast_path_and_match_like_the_loop(rule, matched):
    """A TX:key / &TX:key rule is specialised and matches exactly when it should."""
    rid_actions = 'id:10,phase:1,pass,log"'
    target_op = rule if rule.count('"') == 2 else rule + ","
    if rule.count('"') == 3:  # a rule with its own transformation
        text = 'SecRule %s,%s\n' % (target_op[:-1], rid_actions)
    else:
        text = 'SecRule %s "%s\n' % (rule, rid_actions)
    w = waf('SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2,setvar:tx.two=2,'
            "setvar:'tx.padded=  7abc'\"\n" + text)
    assert _rule(w, 10).fast is not None
    assert (10 in ids(run(w))) is matched


def test_fast_path_sets_matched_var_and_runs_effects():
    """MATCHED_VAR(_NAME), the log record and setvar come out as from the general loop."""
    w = waf('SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2"\n'
            'SecRule &TX:level "@eq 1" "id:10,phase:1,pass,log,msg:\'%{MATCHED_VAR_NAME}\','
            'setvar:tx.seen=%{MATCHED_VAR}"\n'
            'SecRule TX:level "@gt 1" "id:11,phase:1,pass,log,setvar:tx.name=%{MATCHED_VAR_NAME}"')
    tx = run(w)
    assert [(m.rule_id, m.variable, m.value) for m in tx.matches] == [
        (10, "TX:level", b"1"), (11, "TX:level", b"2")]
    assert tx.matches[0].msg == b"TX:level"
    assert tx.variables["seen"] == b"1" and tx.variables["name"] == b"TX:level"


def test_fast_path_with_removed_targets_defers_to_the_loop():
    """With ctl:ruleRemoveTargetById on a one-key rule, the result is the general loop's."""
    text = ('SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2,'
            'ctl:ruleRemoveTargetById=10;TX:level"\n'
            'SecRule TX:level "@eq 2" "id:10,phase:1,pass,log"\n'
            'SecRule &TX:level "@eq 1" "id:11,phase:1,pass,log,ctl:ruleRemoveTargetById=12;TX:x"\n'
            'SecRule TX:level "@eq 2" "id:12,phase:1,pass,log"')
    fast = waf(text)
    slow = waf(text)
    for r in slow.all_rules:
        r.fast = None
    assert [(m.rule_id, m.variable) for m in run(fast).matches] == \
        [(m.rule_id, m.variable) for m in run(slow).matches]
    assert _rule(fast, 10).fast is not None and 11 in ids(run(fast))


def test_other_shapes_are_not_specialised():
    """Two targets, a regex key or a request collection's values stay on the general loop."""
    w = waf('SecRule TX:a|TX:b "@eq 1" "id:1,phase:1,pass"\n'
            'SecRule TX:/^a/ "@eq 1" "id:2,phase:1,pass"\n'
            'SecRule ARGS:a "@eq 1" "id:3,phase:1,pass"\n'
            'SecRule TX:a "@eq 1" "id:4,phase:1,pass,multiMatch"')
    assert [_rule(w, i).fast for i in (1, 2, 3, 4)] == [None] * 4


def test_numeric_cache_stays_bounded():
    """The value -> integer memo never grows past its bound."""
    for i in range(fastpath._INTS_MAX + 10):
        assert fastpath._int(b"%d" % i) == i
    assert len(fastpath._INTS) <= fastpath._INTS_MAX


@pytest.mark.parametrize("ctl, removed", [
    ("ruleRemoveById=20-29", {20, 21}),
    ("ruleRemoveById=21 30", {21, 30}),
    ("ruleRemoveByTag=b", {21, 30}),
    ("ruleRemoveByMsg=m", {20}),
])
def test_removals_as_id_sets(ctl, removed):
    """ctl:ruleRemoveBy* removes exactly the rules with those ids, tags or messages."""
    w = waf('SecAction "id:1,phase:1,pass,nolog,ctl:%s"\n'
            'SecAction "id:20,phase:1,pass,log,msg:m,tag:a"\n'
            'SecAction "id:21,phase:1,pass,log,tag:b"\n'
            'SecAction "id:30,phase:2,pass,log,tag:b"\n'
            'SecAction "id:31,phase:2,pass,log,msg:m2"' % ctl)
    assert set(ids(run(w))) == {20, 21, 30, 31} - removed


def test_request_body_read_before_and_after_the_body():
    """REQUEST_BODY is absent in phase 1 and the body in phase 2, though values are kept."""
    w = waf('SecRequestBodyAccess On\n'
            'SecRule REQUEST_BODY "@rx ." "id:1,phase:1,pass,log"\n'
            'SecRule REQUEST_BODY "@rx hello" "id:2,phase:2,pass,log"\n'
            'SecRule REQUEST_BODY "@rx hello" "id:3,phase:2,pass,log"')
    tx = run(w, method=b"POST", body=b"a=hello",
             headers=((b"content-type", b"application/x-www-form-urlencoded"),))
    assert ids(tx) == [2, 3]


REQUEST_SHAPES = r"""
SecRequestBodyAccess On
SecRule &REQUEST_HEADERS:Host "@eq 0" "id:20,phase:1,pass,log"
SecRule &REQUEST_HEADERS:X-Two "@gt 1" "id:21,phase:1,pass,log,setvar:tx.n=%{MATCHED_VAR}"
SecRule &ARGS "!@eq 0" "id:22,phase:2,pass,log,msg:'%{MATCHED_VAR_NAME}'"
SecRule &REQUEST_COOKIES_NAMES "@ge 2" "id:23,phase:1,pass,log"
SecRule REQBODY_ERROR "!@eq 0" "id:24,phase:2,pass,log"
SecRule REQUEST_BODY_LENGTH "@gt 3" "id:25,phase:2,pass,log"
SecRule REQUEST_PROTOCOL "!@within %{tx.versions}" "id:26,phase:1,pass,log"
SecRule &REQUEST_BODY "@eq 1" "id:27,phase:2,pass,log"
SecRule REQUEST_METHOD "@rx ^POST$" "id:28,phase:1,pass,log,chain"
    SecRule &REQUEST_HEADERS:Content-Type "@eq 0"
SecRule REQUEST_METHOD "@rx ^GET$" "id:29,phase:1,pass,log,setvar:tx.get=1,chain"
    SecRule REQUEST_LINE "@contains ?" "t:lowercase"
SecRule &RESPONSE_HEADERS:X-Back "@eq 1" "id:30,phase:3,pass,log"
SecRule RESPONSE_STATUS "@streq 404" "id:31,phase:3,pass,log"
SecRule REQUEST_METHOD "@rx ^GET$" "id:32,phase:1,pass,log,chain"
    SecRule REQUEST_LINE "@contains ?" "t:lowercase"
"""
SETUP = 'SecAction "id:1,phase:1,pass,nolog,setvar:tx.versions=HTTP/1.1"\n'


@pytest.mark.parametrize("req", [
    dict(uri=b"/"),
    dict(uri=b"/?a=1&b=2", headers=((b"host", b"h"), (b"x-two", b"1"), (b"x-two", b"2"))),
    dict(uri=b"/p", method=b"POST", body=b"a=1&b=2",
         headers=((b"content-type", b"application/x-www-form-urlencoded"),
                  (b"cookie", b"a=1; b=2"))),
    dict(uri=b"/p", method=b"POST", body=b"{bad", headers=((b"content-type",
                                                            b"application/json"),)),
    dict(uri=b"/p", method=b"POST", body=b"xyz"),
    dict(uri=b"/", response=(404, [(b"x-back", b"1")], b"")),
], ids=lambda r: repr(r)[:50])
def test_request_counts_and_scalars_match_like_the_loop(req):
    """Counts of request collections and keys, and scalars, on the fast path: the same
    log (variable names and values), messages and TX as the general loop."""
    fast = waf(SETUP + REQUEST_SHAPES)
    slow = waf(SETUP + REQUEST_SHAPES)
    for r in slow.all_rules:
        for link in r.chain_rules():
            link.fast = None
    taken = {r.id for r in fast.all_rules if r.fast is not None}
    assert {20, 21, 22, 23, 24, 25, 26, 27, 30, 31} <= taken
    # maybe pure (cleanskip.py): fast, and still taken as pure by cleanskip
    pure = {r.id for r in fast.all_rules if r.fast is not None and r.fast.pure}
    # (24 and 25 read what the body's intake set, which no rule changes during a phase;
    # 20-23 and 30 count a request or response collection: a function of it as well)
    # 26's argument reads a TX key only a SecAction sets (fold.py: the same everywhere)
    counted = {20, 21, 22, 23, 24, 25, 26, 30, 31}
    assert counted <= pure <= counted | {28, 29, 32} and _rule(fast, 31).cbit
    assert 27 not in pure  # a count of a scalar
    chained = {r.id: r.child for r in fast.all_rules if r.id in (28, 29, 32)}
    # a count ends 28's chain after a link without effects: fast and maybe pure; a
    # scalar ends 29's after a link that acts (setvar): fast, not pure
    assert chained[28].fast is not None and chained[29].fast is not None
    assert chained[28].fast.pure and not chained[29].fast.pure
    # a scalar that ends 32's chain after a link without effects: maybe pure (the same
    # as 31), fast and taken as pure
    assert chained[32].fast.pure and chained[32].cbit
    a, b = run(fast, **req), run(slow, **req)
    assert [(m.rule_id, m.variable, m.value, m.msg) for m in a.matches] == \
        [(m.rule_id, m.variable, m.value, m.msg) for m in b.matches]
    assert a.variables == b.variables
