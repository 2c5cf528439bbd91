"""Pure rules left out of a phase when earlier requests showed their values clean
(revproxy.firewall.seclang.cleanskip): a WAF that learns from every request it sees logs
and decides exactly what the same rules loaded without it do, request after request, with
attack values coming after the same keys were seen clean, target removals in effect on
some requests only, chains whose first link matches, and values too long to record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import cleanskip
from tests.unit.firewall.seclang_helpers import evaluated, ids, run, with_and_without

RULES = r"""
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule ARGS:skip "@streq 1" "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=20;ARGS:q"
SecRule REQUEST_HEADERS:X-Off "@streq 1" "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=21"
SecRule ARGS:fold "@streq 1" "id:3,phase:1,pass,nolog,ctl:ruleRemoveById=4"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.folded=1"
SecRule TX:folded "@eq 1" "id:5,phase:1,pass,log"
SecRule ARGS|REQUEST_HEADERS:User-Agent "@rx (?i)attack" "id:10,phase:1,pass,log,t:urlDecodeUni"
SecRule REQUEST_FILENAME "@rx ^/admin" "id:11,phase:1,pass,log,chain"
    SecRule ARGS:user "!@streq root" "t:none"
SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" "id:12,phase:1,pass,nolog,chain"
    SecRule ARGS_NAMES "@rx ^bad" "setvar:tx.bad=1"
SecRule ARGS_NAMES "@rx ^zzz" "id:13,phase:1,pass,log"
SecRule ARGS "@rx (?i)attack" "id:20,phase:2,pass,log,t:lowercase"
SecRule ARGS "@pm evil wicked" "id:21,phase:2,pass,log"
SecRule ARGS_GET:mid "@streq 1" "id:22,phase:2,pass,nolog,ctl:ruleRemoveTargetById=23;ARGS:q"
SecRule ARGS|REQUEST_COOKIES "@detectSQLi" "id:23,phase:2,pass,log"
SecRule REQUEST_BODY|ARGS_NAMES "@contains <x>" "id:24,phase:2,pass,log"
SecRule ARGS "@validateByteRange 32-126" "id:25,phase:2,pass,log"
SecRule ARGS "!@rx ^[^~]*$" "id:26,phase:2,pass,log,multiMatch,t:none,t:urlDecodeUni"
SecRule TX:bad "@eq 1" "id:27,phase:2,deny,status:403"
SecRule RESPONSE_STATUS "@rx ^5" "id:30,phase:3,pass,log"
SecRule RESPONSE_BODY "@contains secret" "id:40,phase:4,pass,log"
"""

VALUES = [b"1", b"x", b"attack", b"ATTACK", b"%61ttack", b"evil", b"' or 1=1--", b"<x>",
          b"\x01", b"~", b"%7e", b"root", b"a" * 300, b"wicked one", b""]
KEYS = [b"q", b"skip", b"mid", b"user", b"badkey", b"k", b"fold"]


@pytest.fixture
def pair():
    return with_and_without(cleanskip, RULES)


def _query(args) -> bytes:
    return b"&".join(k + b"=" + v for k, v in args)


def _outcome(tx):
    got = tx.interruption
    return ids(tx), None if got is None else (got.action, got.status, got.rule_id)


def _both(pair, **kw):
    a, b = (_outcome(run(w, **kw)) for w in pair)
    assert a == b, kw
    return a


def test_a_clean_request_lets_the_next_one_skip_the_pure_rules(pair):
    fast, _plain = pair
    for _ in range(2):
        _both(pair, uri=b"/p?q=1&k=x")
    seen = evaluated(fast, uri=b"/p?q=1&k=x")
    assert not {20, 21, 23, 25, 26} & set(seen), seen
    # 12's first link matches every GET, but its second (ARGS_NAMES) was seen clean on
    # "q" and "k": the chain is left out at that link
    assert 12 not in seen, seen


def test_an_attack_after_the_key_was_seen_clean_is_still_caught(pair):
    for _ in range(3):
        assert _both(pair, uri=b"/p?q=1")[0] == [5]
    logged, _ = _both(pair, uri=b"/p?q=attack")
    assert 20 in logged and 10 in logged


def test_values_learned_under_a_target_removal_do_not_serve_requests_without_it(pair):
    # phase 1's ctl removes ARGS:q from rule 20 when skip=1: q=attack is not seen then
    for _ in range(2):
        logged, _ = _both(pair, uri=b"/p?skip=1&q=Attack")
        assert 20 not in logged
    logged, _ = _both(pair, uri=b"/p?q=Attack")
    assert 20 in logged


def test_a_removal_made_during_the_phase_credits_no_rule_it_concerns(pair):
    # rule 22 (phase 2) removes ARGS:q from 23 before it runs, on requests with mid=1
    sqli = b"%27%20or%201%3D1--"
    for _ in range(2):
        logged, _ = _both(pair, uri=b"/p?mid=1&q=" + sqli)
        assert 23 not in logged
    logged, _ = _both(pair, uri=b"/p?q=" + sqli)  # every value seen before
    assert 23 in logged


def test_a_removed_rule_is_not_credited(pair):
    for _ in range(2):
        logged, _ = _both(pair, uri=b"/p?q=evil", headers=((b"x-off", b"1"),))
        assert 21 not in logged
    logged, _ = _both(pair, uri=b"/p?q=evil")
    assert 21 in logged


def test_a_value_known_clean_still_reaches_a_later_chain_link(pair):
    # "badkey" is known clean for rule 13 (phase 1's only pure reader of ARGS_NAMES), but
    # rule 12's second link reads ARGS_NAMES through the prefilter too: the union scan
    # must still see it, or tx.bad is never set and rule 27 never denies
    for _ in range(3):
        assert _both(pair, uri=b"/p?badkey=1")[1] == ("deny", 403, 27)


def test_a_removal_of_a_folded_rule_runs_the_unfolded_list_with_the_records(pair):
    # rule 4 is folded at load (a constant SecAction); fold=1 removes it, so the phase
    # continues on the unfolded list, where the rules left out on clean values come back
    fast, _plain = pair
    assert 4 in fast.folded_ids
    for _ in range(2):
        assert 5 in _both(pair, uri=b"/p?q=1")[0]
    logged, _ = _both(pair, uri=b"/p?fold=1&q=attack")
    assert 5 not in logged and 10 in logged and 20 in logged
    logged, _ = _both(pair, uri=b"/p?fold=1&q=1")
    assert 5 not in logged


def test_long_values_are_never_recorded(pair):
    fast, _plain = pair
    long = b"a" * (cleanskip.VALUE_MAX + 1)
    for _ in range(2):
        _both(pair, uri=b"/p?q=" + long)
    for plan in fast.empty_plans.values():
        for record in _records(plan):  # (a value, or a tuple: (name, value), an atom)
            assert all(long not in (x if isinstance(x, bytes) else x) for x in record)


def _records(plan):
    """Every record dict of ``plan``: per source, and of the atoms (atoms.py)."""
    return [record for memo in plan.memos.values() for record in memo] + \
        [record for recs in plan.atom_recs.values() for record in recs]


def _recorded_bytes(plan):
    return sum(sum(map(len, k)) for record in _records(plan) for k in record)


def test_records_are_bounded(monkeypatch, pair):
    fast, _plain = pair
    monkeypatch.setattr(cleanskip, "MEMO_MAX", 8)
    monkeypatch.setattr(cleanskip, "PLAN_MAX", 20)
    for i in range(40):  # new values, and new removal signatures (skip=1 on some)
        _both(pair, uri=b"/p?k=v%d&q=%d%s" % (i, i, b"&skip=1" if i % 3 else b""))
    for plan in fast.empty_plans.values():
        sizes = [len(record) for record in _records(plan)]
        assert max(sizes, default=0) <= 8 and sum(sizes) <= 20
        assert plan.entries == sum(sizes)
        assert plan.bytes == _recorded_bytes(plan)


def test_long_bodies_are_recorded_within_the_byte_budget(monkeypatch, pair):
    """A 4 KiB form body is recorded (the rules reading REQUEST_BODY then leave the list
    of the next identical POST), and the bytes recorded never pass PLAN_BYTES."""
    fast, _plain = pair
    monkeypatch.setattr(cleanskip, "PLAN_BYTES", 20000)
    form = ((b"content-type", b"application/x-www-form-urlencoded"),)
    body = b"&".join(b"f%d=%s" % (i, b"v" * 70) for i in range(60))
    assert 4000 < len(body) < cleanskip.VALUE_MAX
    for _ in range(2):
        _both(pair, uri=b"/f", method=b"POST", body=body, headers=form)
    plan = fast.empty_plans[2]
    assert any(x[1] == body for memo in plan.memos.values() for record in memo
               for x in record)
    for i in range(12):  # new bodies: the budget empties the records
        _both(pair, uri=b"/f", method=b"POST", body=body + b"&n=%d" % i, headers=form)
        for plan in fast.empty_plans.values():
            assert plan.bytes == _recorded_bytes(plan) <= 20000


def test_body_and_response_rules(pair):
    form = ((b"content-type", b"application/x-www-form-urlencoded"),)
    for _ in range(2):
        _both(pair, uri=b"/f", method=b"POST", body=b"a=1&b=2", headers=form,
              response=(200, [(b"content-type", b"text/html")], b"<p>ok"))
    logged, _ = _both(pair, uri=b"/f", method=b"POST", body=b"a=1&b=<x>", headers=form,
                      response=(503, [(b"content-type", b"text/html")], b"secret"))
    assert {24, 30, 40} <= set(logged)


request = st.fixed_dictionaries({
    "args": st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)), max_size=4),
    "path": st.sampled_from([b"/p", b"/admin", b"/admin/x"]),
    "method": st.sampled_from([b"GET", b"POST"]),
    "ua": st.sampled_from([b"curl", b"attack-bot", b"%41ttack"]),
    "off": st.booleans(),
    "body": st.sampled_from([None, b"a=1", b"a=<x>", b"a=evil"]),
    "status": st.sampled_from([200, 500]),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(request, min_size=1, max_size=12))
def test_random_request_sequences_decide_the_same_with_and_without(reqs):
    """Hypothesis: one WAF learning across a sequence of requests (keys and values
    repeating, attacks among them, removals on some) against the same rules without
    cleanskip: the same logged ids and interruption for every request."""
    fast, plain = with_and_without(cleanskip, RULES)
    for r in reqs:
        headers = [(b"user-agent", r["ua"])]
        if r["off"]:
            headers.append((b"x-off", b"1"))
        body = r["body"]
        if body is not None:
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        uri = r["path"] + (b"?" + _query(r["args"]) if r["args"] else b"")
        kw = dict(uri=uri, method=r["method"], headers=tuple(headers), body=body,
                  response=(r["status"], [(b"content-type", b"text/html")], b"body"))
        assert _outcome(run(fast, **kw)) == _outcome(run(plain, **kw)), kw


# chains whose later link ends them: 30's second link is pure, so the chain drops out once
# its values were seen clean for it; 31 and 32 act on their first link's match (setvar,
# capture), which 40 and 41 show, so they must run whatever their later link reads
CHAIN_RULES = r"""
SecRuleEngine On
SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" "id:30,phase:1,pass,log,chain"
    SecRule ARGS:k "@rx ^boom"
SecRule REQUEST_METHOD "@rx ^GET$" "id:31,phase:1,pass,nolog,setvar:tx.m=+1,chain"
    SecRule ARGS:k "@streq boom"
SecRule REQUEST_METHOD "@rx ^(G)ET$" "id:32,phase:1,pass,nolog,capture,chain"
    SecRule ARGS:k "@streq boom"
SecRule REQUEST_FILENAME "@rx ^/admin" "id:33,phase:1,pass,log,chain"
    SecRule REQUEST_METHOD "!@streq POST" "chain"
        SecRule ARGS_NAMES|REQUEST_HEADERS:X-K "@rx ^bad"
SecRule TX:m "@eq 1" "id:40,phase:2,pass,log"
SecRule TX:1 "@streq G" "id:41,phase:2,pass,log"
"""


@pytest.fixture
def chain_pair():
    return with_and_without(cleanskip, CHAIN_RULES)


def test_a_chain_whose_later_link_was_seen_clean_is_left_out(chain_pair):
    fast, _plain = chain_pair
    for _ in range(2):
        assert _both(chain_pair, uri=b"/p?k=x")[0] == [40, 41]
    seen = evaluated(fast, uri=b"/p?k=x")
    assert 30 not in seen, seen
    # 31 acts on its first link's match (setvar +=): evaluated every time; 32 only
    # captures, and its chain's record replays what it did (chainmemo.py)
    assert 31 in seen and 32 not in seen, seen
    assert _both(chain_pair, uri=b"/p?k=x")[0] == [40, 41]


def test_a_new_value_of_the_later_link_is_still_evaluated(chain_pair):
    for _ in range(2):
        _both(chain_pair, uri=b"/p?k=x")
    assert _both(chain_pair, uri=b"/p?k=boom")[0] == [30, 40, 41]
    assert _both(chain_pair, uri=b"/p?k=x")[0] == [40, 41]


def test_a_three_link_chain_ends_at_either_later_link(chain_pair):
    fast, _plain = chain_pair
    posted = dict(uri=b"/admin?bad=1", method=b"POST")
    for _ in range(2):  # the second link fails on POST: its value POST is recorded
        assert 33 not in _both(chain_pair, **posted)[0]
    assert 33 not in evaluated(fast, **posted)
    for _ in range(2):  # the third fails on good names: recorded for the third link
        assert 33 not in _both(chain_pair, uri=b"/admin?good=1")[0]
    assert 33 not in evaluated(fast, uri=b"/admin?good=1")
    assert 33 in _both(chain_pair, uri=b"/admin?bad=1")[0]
    assert 33 in _both(chain_pair, uri=b"/admin?good=1", headers=((b"x-k", b"bad"),))[0]


chain_request = st.fixed_dictionaries({
    "k": st.sampled_from([None, b"x", b"boom", b"boomer", b""]),
    "names": st.lists(st.sampled_from([b"good", b"bad", b"badge", b"q"]), max_size=2),
    "path": st.sampled_from([b"/p", b"/admin", b"/admin/x"]),
    "method": st.sampled_from([b"GET", b"POST", b"HEAD"]),
    "xk": st.sampled_from([None, b"ok", b"bad"]),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(chain_request, min_size=1, max_size=12))
def test_random_sequences_through_chains_decide_the_same_with_and_without(reqs):
    fast, plain = with_and_without(cleanskip, CHAIN_RULES)
    for r in reqs:
        args = [(n, b"1") for n in r["names"]]
        if r["k"] is not None:
            args.append((b"k", r["k"]))
        uri = r["path"] + (b"?" + _query(args) if args else b"")
        headers = ((b"x-k", r["xk"]),) if r["xk"] is not None else ()
        kw = dict(uri=uri, method=r["method"], headers=headers)
        assert _outcome(run(fast, **kw)) == _outcome(run(plain, **kw)), kw


KEY_REGEX_RULES = r"""
SecRuleEngine On
SecRule REQUEST_COOKIES:/^x/ "@rx bad" "id:1,phase:1,pass,log"
SecRule REQUEST_COOKIES "@rx bad" "id:2,phase:1,pass,log"
SecRule ARGS:/^x/ "@rx bad" "id:3,phase:2,pass,log"
SecRule ARGS "@rx bad" "id:4,phase:2,pass,log"
"""


def test_a_regex_key_reader_does_not_stand_for_the_whole_collection():
    """The first reader of REQUEST_COOKIES (and of ARGS) selects keys by regex: its values
    must not decide whether the collection is empty or known clean for the rule reading
    all of it (an attacker's cookie a=bad was missed before this was fixed)."""
    pair = with_and_without(cleanskip, KEY_REGEX_RULES)
    cookie = ((b"cookie", b"a=ok; xa=ok"),)
    for _ in range(2):
        assert _both(pair, uri=b"/?a=ok&xa=ok", headers=cookie)[0] == []
    assert _both(pair, uri=b"/?a=bad", headers=((b"cookie", b"a=bad"),))[0] == [2, 4]
    assert _both(pair, uri=b"/?a=bad&xa=ok", headers=((b"cookie", b"a=bad; xa=ok"),)
                 )[0] == [2, 4]
    assert _both(pair, uri=b"/?xa=bad", headers=((b"cookie", b"xa=bad"),))[0] == [1, 2, 3, 4]


key_regex_request = st.fixed_dictionaries({
    "args": st.lists(st.tuples(st.sampled_from([b"a", b"xa", b"x"]),
                               st.sampled_from([b"ok", b"bad", b"no"])), max_size=3),
    "cookies": st.lists(st.tuples(st.sampled_from([b"a", b"xa", b"x"]),
                                  st.sampled_from([b"ok", b"bad", b"no"])), max_size=3),
})


@settings(max_examples=100, deadline=None)
@given(st.lists(key_regex_request, min_size=1, max_size=10))
def test_random_sequences_with_regex_keys_decide_the_same_with_and_without(reqs):
    fast, plain = with_and_without(cleanskip, KEY_REGEX_RULES)
    for r in reqs:
        headers = ((b"cookie", b"; ".join(k + b"=" + v for k, v in r["cookies"])),) \
            if r["cookies"] else ()
        kw = dict(uri=b"/" + (b"?" + _query(r["args"]) if r["args"] else b""),
                  headers=headers)
        assert _outcome(run(fast, **kw)) == _outcome(run(plain, **kw)), kw


# the argument reads TX keys: constant (101: marked by fold.py, pure), written by a rule
# that depends on the request before (102: not marked), or on one path only (103)
MACRO_RULES = r"""
SecRuleEngine On
SecAction "id:90,phase:1,pass,nolog,setvar:'tx.methods=GET HEAD',setvar:'tx.versions=HTTP/1.1',setvar:tx.ext=.bin/"
SecRule REQUEST_METHOD "!@within %{tx.methods}" "id:101,phase:1,pass,log"
SecRule ARGS:v "@streq 2" "id:91,phase:1,pass,nolog,setvar:'tx.versions=HTTP/2.0'"
SecRule REQUEST_PROTOCOL "!@within %{tx.versions}" "id:102,phase:1,pass,log"
SecRule ARGS:skip "@streq 1" "id:92,phase:1,pass,nolog,skipAfter:END"
SecAction "id:93,phase:1,pass,nolog,setvar:tx.ext=.php/"
SecMarker END
SecRule REQUEST_BASENAME "@endsWith %{tx.ext}" "id:103,phase:1,pass,log,t:none"
SecRule ARGS:q "@contains %{tx.methods}" "id:104,phase:2,pass,log"
"""


def test_a_macro_reading_known_tx_is_pure_and_the_others_are_not():
    w = with_and_without(cleanskip, MACRO_RULES)[0]
    marked = {r.id for r in w.all_rules if r.macro_known}
    assert {101, 104} <= marked and not {102, 103} & marked


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"GET", b"POST", b"HEAD"]),
                          st.sampled_from([b"/a.bin", b"/a.php", b"/b"]),
                          st.lists(st.sampled_from([b"v=2", b"skip=1", b"q=GET HEAD",
                                                    b"q=x"]), max_size=2)),
                min_size=1, max_size=10))
def test_random_sequences_with_known_macros_decide_the_same_with_and_without(reqs):
    pair = with_and_without(cleanskip, MACRO_RULES)
    for method, path, args in reqs:
        uri = path + (b"?" + b"&".join(args) if args else b"")
        for _ in range(3):
            _both(pair, uri=uri, method=method)
