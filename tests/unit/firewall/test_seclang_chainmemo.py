"""Records of chains that did not match (revproxy.firewall.seclang.chainmemo): a WAF that
replays them logs what the same rules evaluated link by link log, with the same
MATCHED_VAR for the rules after, and leaves the TX store with the same keys, values and
order (a rule reading the whole store sees it), request after request: captures with
stale groups present or not before the chain, keys removed by ``setvar:!``, chains failing
at their first, second or third link, chains that match."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import chainmemo, replay
from tests.unit.firewall.seclang_helpers import (
    run, same_outcome, same_over_sequence, waf, with_and_without,
)

RULES = r"""
SecRuleEngine On
SecRequestBodyAccess On
SecAction "id:1,phase:1,pass,nolog,setvar:'tx.allowed=/host/ /accept/ /x-ok/'"
SecRule ARGS:pre "@rx ^(a)(b)?(c)?" "id:2,phase:1,pass,nolog,capture"
SecRule ARGS:drop "@streq 1" "id:3,phase:1,pass,nolog,setvar:!tx.2"
SecRule ARGS:gone "@streq 1" "id:4,phase:1,pass,nolog,setvar:tx.gone=1"
SecRule REQUEST_HEADERS_NAMES "@rx ^(.)(.)?(.*)$" "id:10,phase:1,pass,log,capture,t:lowercase,setvar:'tx.hn_%{tx.0}=/%{tx.0}/',setvar:'tx.first=%{tx.1}',chain"
    SecRule TX:/^hn_/ "!@within %{tx.allowed}" "setvar:tx.score=+1"
SecRule ARGS:five "@streq 1" "id:5,phase:1,pass,nolog,setvar:tx.5=x"
SecRule REQUEST_FILENAME "@rx \.([^.]+)$" "id:11,phase:1,pass,log,capture,setvar:'tx.ext=.%{tx.1}/',chain"
    SecRule TX:EXT "@within .php/ .asp/" "setvar:tx.score=+5"
SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" "id:12,phase:1,pass,log,chain"
    SecRule &REQUEST_HEADERS:Transfer-Encoding "!@eq 0" "setvar:tx.score=+3"
SecRule REQUEST_HEADERS:Content-Type "@rx ^([^;\s]+)" "id:13,phase:1,pass,log,capture,setvar:'tx.ct=|%{tx.1}|',chain"
    SecRule ARGS:mode "@streq strict" "chain"
        SecRule TX:ct "!@within |text/plain| |application/x-www-form-urlencoded|" "setvar:tx.score=+7"
SecRule MATCHED_VAR "@rx ." "id:15,phase:1,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule ARGS_NAMES "@rx ^k(.*)" "id:14,phase:2,pass,log,capture,setvar:'tx.k_%{tx.1}=%{tx.0}',setvar:'!tx.gone',chain"
    SecRule ARGS "@rx evil" "setvar:tx.score=+2"
SecRule MATCHED_VAR "@rx ." "id:20,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule TX:/.*/ "@rx ^[/|.]" "id:21,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}'"
SecRule TX:score "@ge 7" "id:30,phase:2,deny,status:403"
"""

HEADERS = [(b"x-ok", b"1"), (b"x-bad", b"1"), (b"accept", b"*/*"),
           (b"transfer-encoding", b"chunked"), (b"content-type", b"text/plain"),
           (b"content-type", b"text/xml; charset=x"), (b"user-agent", b"u"),
           (b"Content-Type", b"text/plain")]  # (the name as sent: MATCHED_VAR_NAME)
PATHS = [b"/a.php", b"/b.txt", b"/c", b"/d.asp"]
ARGS = [b"pre=abc", b"pre=ab", b"pre=a", b"pre=x", b"drop=1", b"gone=1", b"five=1",
        b"mode=strict",
        b"kfoo=evil", b"kbar=1", b"k=2"]


def _request(path, args, headers, method):
    query = b"&".join(args)
    return dict(uri=path + (b"?" + query if query else b""), headers=tuple(headers),
                method=method)


def _outcome(tx):
    got = tx.interruption
    return ([(m.rule_id, m.logdata, m.variable, m.value) for m in tx.matches],
            list(tx.stores["tx"].items()), None if got is None else got.rule_id)


def _same(pair, **kw):
    return same_outcome(pair, _outcome, **kw)


@pytest.fixture
def pair():
    return with_and_without(chainmemo, RULES)


def test_the_chains_qualify():
    w = waf(RULES)
    assert {r.id for r in w.all_rules if r.chain_memo is not None} == {10, 11, 12, 13, 14}


class _Spy:
    def __init__(self, monkeypatch):
        self.evaluated = []
        original = chainmemo._evaluate

        def evaluate(ev, rule):
            self.evaluated.append(rule.id)
            return original(ev, rule)
        monkeypatch.setattr(chainmemo, "_evaluate", evaluate)


def test_the_third_sighting_replays_the_record(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    req = _request(b"/b.txt", [b"pre=abc", b"kbar=1"], [(b"x-ok", b"1")], b"GET")
    for _ in range(2):
        _same(pair, **req)
    assert {10, 11, 12, 14} <= set(spy.evaluated)
    spy.evaluated.clear()
    _same(pair, **req)
    assert not {10, 11, 12, 14} & set(spy.evaluated), spy.evaluated


def test_a_chain_that_matches_is_always_evaluated(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    req = _request(b"/a.php", [], [], b"GET")  # 11 matches: the extension is listed
    for _ in range(3):
        matches, _tx, _ = _same(pair, **req)
        assert 11 in [m[0] for m in matches]
    assert spy.evaluated.count(11) == 3


@pytest.mark.parametrize("per_value", [True, False])
def test_a_stale_capture_group_before_the_chain_is_removed_as_evaluated(monkeypatch,
                                                                        per_value):
    """11 captures one group: the record made when 2 left groups 1-2 behind removes
    them, one made without them is not used while they are there, and one made when
    group 5 was absent still removes it when it is there (a capture writes all ten);
    with and without replay.py's per-value records under the chain's first link."""
    monkeypatch.setattr(replay, "ENABLED", per_value)
    pair = with_and_without(chainmemo, RULES)
    for args in ([b"pre=abc"], [b"pre=x"], [b"pre=abc"], [b"pre=x"], [b"pre=ab"],
                 [b"pre=ab", b"five=1"], [b"pre=x"], [b"five=1"]):
        for _ in range(3):
            _same(pair, **_request(b"/b.txt", args, [], b"GET"))


def test_a_removed_key_and_a_failure_at_each_link(pair):
    reqs = [_request(b"/c", [b"gone=1", b"kbar=1"], [], b"GET"),
            _request(b"/c", [b"mode=strict"], [(b"content-type", b"text/plain")], b"GET"),
            _request(b"/c", [b"mode=strict"], [(b"content-type", b"text/xml")], b"GET"),
            _request(b"/c", [b"mode=lax"], [(b"content-type", b"text/xml")], b"GET")]
    for req in reqs + reqs + reqs:
        _same(pair, **req)


def test_a_header_read_by_key_under_another_case_of_its_name(pair):
    """13 reads REQUEST_HEADERS:Content-Type, an input made from the headers as sent
    (no index built): the same value under another case of the name, the chain failing
    at its second link (15 logs MATCHED_VAR_NAME), decides as evaluated."""
    for _ in range(3):
        for name in (b"content-type", b"Content-Type"):
            _same(pair, **_request(b"/c", [b"mode=lax"], [(name, b"text/plain")], b"GET"))


def test_detect_mode_evaluates(monkeypatch):
    fast = waf(RULES, modes={10: "detect"})
    spy = _Spy(monkeypatch)
    req = _request(b"/b.txt", [], [(b"x-ok", b"1")], b"GET")
    for _ in range(3):
        run(fast, **req)
    assert 10 not in spy.evaluated  # detect mode takes the plain loop, not the records
    assert spy.evaluated.count(11) == 2  # (the others: seen once, recorded, replayed)


def test_records_are_bounded(monkeypatch, pair):
    fast, _plain = pair
    monkeypatch.setattr(chainmemo, "MEMO_MAX", 4)
    for i in range(30):
        for _ in range(2):
            _same(pair, **_request(b"/f%d.txt" % i, [], [], b"GET"))
    memo = next(r.chain_memo for r in fast.all_rules if r.id == 11)
    assert 0 < len(memo.memo) <= 4
    assert memo.bytes == sum(chainmemo._size(k) + 64 + (0 if r is None else r.size)
                             for k, r in memo.memo.items())


def test_long_inputs_are_not_recorded(pair):
    fast, _plain = pair
    long = b"/" + b"a" * chainmemo.KEY_MAX + b".txt"
    for _ in range(3):
        _same(pair, **_request(long, [], [], b"GET"))
    memo = next(r.chain_memo for r in fast.all_rules if r.id == 11)
    assert not memo.memo


def test_the_tracking_store_refuses_what_it_cannot_note():
    tracking = chainmemo._Tracking({"a": b"1"})
    with pytest.raises(TypeError):
        tracking.clear()
    tracking.setdefault("b", b"2")
    tracking.update({"c": b"3"})
    del tracking["a"]
    tracking.pop("z", None)
    assert list(tracking.written) == ["b", "c", "a", "z"]
    assert list(tracking.inserted) == ["b", "c"]


requests = st.builds(_request, st.sampled_from(PATHS),
                     st.lists(st.sampled_from(ARGS), max_size=3),
                     st.lists(st.sampled_from(HEADERS), max_size=3),
                     st.sampled_from([b"GET", b"POST"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(requests, min_size=1, max_size=10), st.lists(st.integers(1, 3), min_size=10,
                                                             max_size=10))
def test_random_sequences_decide_and_leave_tx_as_without(reqs, times):
    same_over_sequence(with_and_without(chainmemo, RULES), _outcome, reqs, times)
