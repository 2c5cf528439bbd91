"""Per-value records of pure links' matches (revproxy.firewall.seclang.replay): which links
qualify, and a WAF replaying records decides, logs and leaves TX exactly as the same rules
loaded without them, over sequences of requests whose values repeat."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import replay
from tests.unit.firewall.seclang_helpers import run, waf, with_and_without

RULES = r"""
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:'tx.restricted=/proxy/ /x-evil/',setvar:tx.crit=5"
SecRule REQUEST_HEADERS:X-Three "@rx ^(a)(b)(c)" "id:2,phase:1,pass,nolog,capture,setvar:tx.three=%{tx.3}"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:10,phase:1,pass,nolog,capture,t:none,t:lowercase,setvar:'tx.hn_%{tx.0}=/%{tx.0}/',chain"
    SecRule TX:/^hn_/ "@within %{tx.restricted}" "setvar:'tx.score=+%{tx.crit}'"
SecRule REQUEST_BASENAME "@rx \.([^.]+)$" "id:11,phase:1,pass,nolog,capture,t:none,t:urlDecodeUni,setvar:'tx.ext=.%{tx.1}/',chain"
    SecRule TX:EXT "@within .bak/ .sql/" "t:lowercase,setvar:'tx.score=+%{tx.crit}'"
SecRule REQUEST_HEADERS:Content-Type "!@rx ^text/" "id:12,phase:1,pass,nolog,capture,setvar:!tx.plain,setvar:tx.ct=%{tx.0}"
SecRule ARGS "@rx (evil)(\d*)" "id:13,phase:2,pass,log,capture,t:lowercase,chain"
    SecRule MATCHED_VARS "@rx evil" "setvar:'tx.score=+%{tx.crit}'"
SecRule TX:score "@ge 5" "id:20,phase:2,deny,status:403,log,msg:'score %{tx.score} %{tx.0} %{tx.1} %{tx.2} %{tx.3}'"
SecRule TX:0 "@rx ." "id:21,phase:2,pass,log,msg:'last %{tx.0} %{tx.1} %{tx.2} %{tx.3} %{matched_var_name}'"
"""


def _pair(rules=RULES):
    return with_and_without(replay, rules)


def _state(tx):
    got = tx.interruption
    return ([(m.rule_id, m.msg, m.variable, m.value) for m in tx.matches],
            None if got is None else (got.action, got.status, got.rule_id),
            dict(tx.variables), (tx.vars.matched_var_name, tx.vars.matched_var))


def test_the_links_that_qualify():
    fast, plain = _pair()
    links = {link.id: link for r in fast.all_rules for link in r.chain_rules()
             if link.replay is not None}
    assert set(links) == {2, 10, 11, 12, 13}
    # a replayed link takes the general loop, which replays (fastpath.py's would not)
    assert all(link.fast is None for link in links.values())
    assert all(link.replay is None for r in plain.all_rules for link in r.chain_rules())
    # not: a count of the score ('+'), a macro reading other TX, a name that may be a
    # capture variable (3, 4, and 9: "7" then an empty TX:0), a multiMatch, a macro in
    # the operator, a ctl
    others = waf(r"""
SecRule ARGS "@rx a" "id:1,phase:2,pass,capture,setvar:tx.n=+1"
SecRule ARGS "@rx a" "id:2,phase:2,pass,capture,setvar:tx.n=%{tx.other}"
SecRule ARGS "@rx a" "id:3,phase:2,pass,capture,setvar:'tx.%{tx.0}=1'"
SecRule ARGS "@rx a" "id:4,phase:2,pass,capture,setvar:tx.0=x"
SecRule ARGS "@rx a" "id:5,phase:2,pass,capture,multiMatch,setvar:tx.n=%{tx.0}"
SecRule ARGS "@rx %{tx.p}" "id:6,phase:2,pass,capture,setvar:tx.n=%{tx.0}"
SecRule ARGS "@rx a" "id:7,phase:2,pass,nolog,ctl:ruleRemoveById=1"
SecRule ARGS "@rx a" "id:8,phase:2,pass,capture,setvar:'tx.x%{tx.0}=1'"
SecRule ARGS "@rx a" "id:9,phase:2,pass,capture,setvar:'tx.7%{tx.0}=1'"
""")
    assert {r.id for r in others.all_rules if r.replay is not None} == {8}


def test_a_repeated_request_replays_and_matches_the_plain_load():
    fast, plain = _pair()
    headers = ((b"x-three", b"abc"), (b"content-type", b"application/json"),
               (b"accept", b"*/*"), (b"x-evil", b"1"))
    for _ in range(3):
        a, b = run(fast, b"/f.bak?q=evil7&r=ok", headers=headers), \
            run(plain, b"/f.bak?q=evil7&r=ok", headers=headers)
        assert _state(a) == _state(b)
    assert a.interruption is not None and a.interruption.rule_id == 20
    assert any(link.replay.memo for r in fast.all_rules for link in r.chain_rules()
               if link.replay is not None)


def test_replay_skips_the_operator_for_a_recorded_value(monkeypatch):
    fast, _ = _pair()
    link = next(r for r in fast.all_rules if r.id == 10)
    run(fast, b"/", headers=((b"accept", b"*/*"),))
    calls = []
    original = link.operator

    def counting(value, expand):
        calls.append(value)
        return original(value, expand)
    monkeypatch.setattr(link, "operator", counting)
    run(fast, b"/", headers=((b"accept", b"*/*"),))
    assert calls == []
    run(fast, b"/", headers=((b"accept", b"*/*"), (b"x-new", b"1")))
    assert calls == [b"x-new"]


def test_detect_mode_runs_the_effects_path():
    w = waf(RULES, modes={10: "detect"})
    for _ in range(2):
        tx = run(w, b"/", headers=((b"x-evil", b"1"),))
        assert "hn_x-evil" not in tx.variables  # detect: the setvar does not run


def test_records_are_bounded(monkeypatch):
    monkeypatch.setattr(replay, "MEMO_MAX", 4)
    fast, plain = _pair()
    for i in range(12):
        headers = ((b"x-h%d" % i, b"1"), (b"x-big", b"v"))
        assert _state(run(fast, b"/?q=evil%d" % i, headers=headers)) == \
            _state(run(plain, b"/?q=evil%d" % i, headers=headers))
    link = next(r for r in fast.all_rules if r.id == 10)
    assert 0 < len(link.replay.memo) <= 4
    long = b"/?q=" + b"e" * (replay.VALUE_MAX + 1)
    run(fast, long)
    link13 = next(r for r in fast.all_rules if r.id == 13)
    assert all(len(x[1]) <= replay.VALUE_MAX for x in link13.replay.memo)


def test_records_stay_within_their_byte_budget(monkeypatch):
    """Long values an attacker makes up each time: a link's record is emptied at
    BYTES_MAX, and its count of bytes matches what it holds after every request."""
    monkeypatch.setattr(replay, "BYTES_MAX", 20000)
    fast, plain = _pair()
    link = next(r for r in fast.all_rules if r.id == 13)
    for i in range(30):
        uri = b"/?q=evil%d" % i + b"x" * 3000
        assert _state(run(fast, uri)) == _state(run(plain, uri))
        held = sum(replay._size(x, got) for x, got in link.replay.memo.items())
        assert link.replay.bytes == held <= 20000


NAMES = [b"accept", b"x-three", b"content-type", b"x-evil", b"proxy", b"x-a"]
VALUES = [b"abc", b"abz", b"text/html", b"application/x", b"1", b""]

request = st.fixed_dictionaries({
    "headers": st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)),
                        max_size=4),
    "path": st.sampled_from([b"/", b"/a.bak", b"/b.txt", b"/c.%53QL", b"/d."]),
    "args": st.lists(st.sampled_from([b"q=evil", b"q=evil42", b"q=EVIL", b"r=ok", b"s=x"]),
                     max_size=3),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(request, min_size=1, max_size=10))
def test_random_sequences_replay_what_the_plain_load_does(reqs):
    fast, plain = _pair()
    for r in reqs:
        uri = r["path"] + (b"?" + b"&".join(r["args"]) if r["args"] else b"")
        kw = dict(uri=uri, headers=tuple(r["headers"]))
        assert _state(run(fast, **kw)) == _state(run(plain, **kw)), kw


@pytest.mark.parametrize("mutate", ["no-removes", "no-matched-vars"])
def test_the_checks_fail_when_replay_forgets_something(monkeypatch, mutate):
    """The differential check above sees a replay that leaves out stale capture groups or
    MATCHED_VARS (what the guards of Replay.run are for)."""
    original = replay.Replay._evaluate

    def broken(ev, rule, x, transform, t_class):
        got = original(ev, rule, x, transform, t_class)
        if got is replay._NO:
            return got
        tv, sets, removes = got
        return (tv, sets, ()) if mutate == "no-removes" else (tv, sets, removes)
    monkeypatch.setattr(replay.Replay, "_evaluate", staticmethod(broken))
    if mutate == "no-matched-vars":
        monkeypatch.setattr(replay.Replay, "run", _run_without_matched_vars)
    fast, plain = _pair()
    headers = ((b"x-three", b"abc"), (b"x-a", b"1"))
    differ = False
    for uri in (b"/a.bak?q=evil7", b"/a.bak?q=evil7"):
        differ = differ or _state(run(fast, uri, headers=headers)) != \
            _state(run(plain, uri, headers=headers))
    assert differ


def _run_without_matched_vars(self, ev, rule, vals, transform, t_class):
    matched = False
    for x in vals:
        got = self.memo.get(x)
        if got is None:
            got = self.memo[x] = self._evaluate(ev, rule, x, transform, t_class)
            matched = matched or got is not replay._NO
            continue
        if got is not replay._NO:
            matched = True
            ev.stores["tx"].update(got[1])
            for key in got[2]:
                ev.stores["tx"].pop(key, None)
    return matched


def test_a_replayed_scalar_link_leaves_the_fast_path():
    """A one-scalar link fastpath.py would specialise takes the general loop when it is
    replayed, and its record serves the next request."""
    w = waf('SecRule REQUEST_METHOD "@streq GET" '
            '"id:1,phase:1,pass,nolog,capture,setvar:tx.m=%{tx.0}"')
    link = w.all_rules[0]
    assert link.replay is not None and link.fast is None
    for _ in range(2):
        assert run(w).variables["m"] == b"GET"
    assert list(link.replay.memo) == [("REQUEST_METHOD", b"GET")]
