"""List records (revproxy.firewall.seclang.listmemo): once the atoms chose a phase's list,
what the rules left in it did is replayed when their inputs come back. A WAF using them
logs, decides and leaves the transaction (TX keys, values and order, target removals,
body processor, MATCHED_VAR) exactly as the same rules evaluated one by one, request after
request: ctl actions on every request, chains with captures, MATCHED_VAR read by the next
rule, skipAfter, requests that log or are denied in between, removals by id."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import listmemo, phaseloop
from tests.unit.firewall.seclang_helpers import (
    run, same_outcome, same_over_sequence, view, waf, with_and_without,
)

RULES = r"""
SecRuleEngine On
SecRequestBodyAccess On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.score=0,setvar:'tx.allowed=/host/ /accept/ /x-ok/ /content-type/'"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|JSON)" "id:3,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"
SecRule REQUEST_FILENAME "!@rx [<>]" "id:4,phase:1,pass,nolog,ctl:ruleRemoveTargetById=20;REQUEST_FILENAME"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:5,phase:1,pass,nolog,capture,t:lowercase,setvar:'tx.hn_%{tx.0}=/%{tx.0}/',chain"
    SecRule TX:/^hn_/ "!@within %{tx.allowed}" "setvar:tx.score=+1"
SecRule REQUEST_HEADERS|ARGS "@rx (?i)attack" "id:10,phase:1,pass,log,setvar:tx.score=+5"
SecRule MATCHED_VAR "@rx ." "id:11,phase:1,pass,nolog,setvar:'tx.last=%{MATCHED_VAR_NAME}'"
SecRule ARGS:drop "@streq 1" "id:15,phase:1,pass,nolog,ctl:ruleRemoveById=21"
SecRule TX:score "@ge 5" "id:12,phase:1,deny,status:403"
SecRule ARGS:skip "@streq 1" "id:13,phase:1,pass,nolog,skipAfter:END1"
SecRule REQUEST_METHOD "@streq DELETE" "id:14,phase:1,pass,log"
SecMarker END1
SecRule ARGS_GET:t "@rx ^(\w+)$" "id:16,phase:1,pass,nolog,capture,setvar:tx.t=%{tx.1}"
SecRule ARGS_GET:o "@streq 1" "id:18,phase:1,pass,nolog,setvar:tx.ka=1,setvar:tx.kb=1"
SecRule ARGS_GET:o "@streq 2" "id:19,phase:1,pass,nolog,setvar:tx.kb=1,setvar:tx.ka=1"
SecRule REQUEST_METHOD "@rx ." "id:17,phase:1,pass,nolog"
SecRule TX:t "@streq red" "id:25,phase:2,pass,nolog,setvar:tx.red=1"
SecRule MATCHED_VAR "@rx ^G" "id:26,phase:2,pass,nolog,setvar:tx.g=1"
SecRule TX:/^k/ "@rx ." "id:27,phase:2,pass,nolog,setvar:tx.k=%{MATCHED_VAR_NAME}"
SecRule ARGS:mv "@streq 1" "id:28,phase:2,pass,nolog,setvar:!tx.score,setvar:tx.score=0"
SecRule ARGS:rm "@streq 1" "id:29,phase:2,pass,nolog,setvar:!tx.allowed"
SecRule REQUEST_FILENAME|ARGS "@contains evil" "id:20,phase:2,pass,log,setvar:tx.score=+5"
SecRule ARGS:q "@rx ^(\d+)$" "id:21,phase:2,pass,nolog,capture,setvar:tx.num=%{tx.1}"
SecRule REQUEST_BODY "@contains bad" "id:22,phase:2,pass,log"
SecRule TX:score "@ge 1" "id:23,phase:2,pass,log,msg:'score %{tx.score}'"
SecRule TX:/^hn_/ "@rx x-" "id:24,phase:2,pass,nolog,setvar:tx.xh=+1"
SecRule TX:score "@lt 1" "id:90,phase:5,pass,nolog,setvar:tx.done=1"
SecRule TX:score "@ge 1" "id:91,phase:5,pass,log"
SecRule TX:num "@streq 1" "id:92,phase:5,pass,nolog,setvar:tx.one=1"
"""

HEADERS = [(b"x-ok", b"1"), (b"x-bad", b"1"), (b"accept", b"*/*"),
           (b"content-type", b"application/json"), (b"user-agent", b"attack"),
           (b"content-type", b"text/plain")]
PATHS = [b"/a", b"/b.txt", b"/evil", b"/c<d"]
ARGS = [b"q=12", b"q=x", b"skip=1", b"drop=1", b"a=attack", b"e=evil", b"t=red", b"t=blue",
        b"o=1", b"o=2", b"mv=1", b"rm=1"]
BODIES = [None, b"x=1", b"bad=1", b'{"k": "v"}']


def _request(path, args, headers, method, body=None):
    query = b"&".join(args)
    return dict(uri=path + (b"?" + query if query else b""), headers=tuple(headers),
                method=method, body=body)


def _outcome(tx):
    got = tx.interruption
    v = tx.vars
    return ([(m.rule_id, m.logdata, m.msg, m.variable, m.value) for m in tx.matches],
            list(tx.stores["tx"].items()), None if got is None else got.rule_id,
            tx.engine_mode, [(how, str(which), [t.text for t in targets])
                             for how, which, targets in tx._removed_targets],
            sorted(tx._removed_ids), tx.body_processor, tx.force_body_variable,
            v.matched_var, v.matched_var_name, list(v.matched))


def _same(pair, **kw):
    """(The work counted is left out: the other shortcuts' records, which the two WAFs
    hold in different states, change it; ``test_a_replayed_phase_counts_its_work``.)"""
    return same_outcome(pair, _outcome, **kw)


@pytest.fixture
def pair():
    return with_and_without(listmemo, RULES)


class _Spy:
    """The phases the loop evaluated (the others were replayed)."""

    def __init__(self, monkeypatch):
        self.phases = []
        original = phaseloop._loop

        def loop(ev, phase, *args):
            self.phases.append(phase)
            return original(ev, phase, *args)
        monkeypatch.setattr(phaseloop, "_loop", loop)


def test_a_repeated_request_replays_its_phases(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    req = _request(b"/b.txt", [b"q=12"], [(b"x-ok", b"1"), (b"x-bad", b"1")], b"GET")
    for _ in range(4):
        _same(pair, **req)
    spy.phases.clear()
    matches, tx, _rid, *_rest = _same(pair, **req)
    assert 1 not in spy.phases[:len(spy.phases) // 2], spy.phases  # (the fast WAF's run)
    assert ("num", b"12") in tx and ("hn_x-bad", b"/x-bad/") in tx
    assert [m[0] for m in matches] == [23, 91]  # x-bad scores 1: logged by 23 and 91


def test_a_replayed_phase_counts_its_work(monkeypatch):
    """The work limit still bounds a transaction whose phases are replayed: each adds
    what it counted when it was recorded."""
    fast = waf(RULES)
    spy = _Spy(monkeypatch)
    req = _request(b"/b.txt", [b"q=12"], [(b"x-ok", b"1")], b"GET")
    works = []
    for _ in range(6):
        spy.phases.clear()
        works.append(run(fast, **req).work)
    assert 1 not in spy.phases and works[-1] == works[-2] == works[3] > 0, works


def test_a_phase_reading_only_tx_is_replayed_whole(pair, monkeypatch):
    """Phase 5 (90, 91: TX:score) has no cleanskip Plan: its whole list has records, used
    from the third request whatever the request's pieces (its inputs are TX alone)."""
    fast, _plain = pair
    assert 5 in fast.whole_memos
    spy = _Spy(monkeypatch)
    for i in range(4):
        spy.phases.clear()
        _same(pair, **_request(b"/n%d" % i, [], [(b"x-ok", b"1")], b"GET"))
        # (both WAFs run the loop for phases 1 and 2; the plain one for phase 5 too)
        assert spy.phases.count(5) == (2 if i < 2 else 1), (i, spy.phases)
    logged, *_rest = _same(pair, **_request(b"/n9", [], [(b"x-bad", b"1")], b"GET"))
    assert 91 in [m[0] for m in logged]  # another TX store: evaluated, and it logs


def test_requests_that_alternate_keep_their_records(pair, monkeypatch):
    """Phase 5's inputs are TX alone and differ between two requests that alternate (tx.t,
    tx.red): each TX store has its own record (named by the record that left it,
    ``run_phase``'s token), so neither evaluates again once both are recorded (one record
    per inputs, compared with the store, made them take turns)."""
    spy = _Spy(monkeypatch)
    a = _request(b"/b.txt", [b"t=red"], [(b"x-ok", b"1")], b"GET")
    b = _request(b"/b.txt", [b"t=blue"], [(b"x-ok", b"1")], b"GET")
    for _ in range(8):  # (each phase's records are keyed by the record of the one before)
        _same(pair, **a)
        _same(pair, **b)
    spy.phases.clear()
    _same(pair, **a)
    assert spy.phases.count(5) == 1, spy.phases  # (the plain WAF's)
    spy.phases.clear()
    _same(pair, **b)
    assert spy.phases.count(5) == 1, spy.phases


def test_a_phase_evaluated_leaves_the_store_unnamed(pair):
    """Phase 2 logs (22: the body holds "bad") and is evaluated on every request; phase 1
    is replayed (the same for both requests: they differ in the body). Phase 2 sets tx.num
    from q, which 92 reads in phase 5, and ends with the same MATCHED_VAR (24, x-ok): phase
    5's records must not take the store for the one phase 1 left."""
    form = [(b"content-type", b"application/x-www-form-urlencoded"), (b"x-ok", b"1")]
    a = _request(b"/a", [], form, b"POST", b"bad=1&q=1")
    b = _request(b"/a", [], form, b"POST", b"bad=1&q=2")
    for _ in range(8):
        assert ("one", b"1") in _same(pair, **a)[1]
        assert ("one", b"1") not in _same(pair, **b)[1]


def test_a_lone_tx_update_names_the_store_it_leaves():
    """Phase 3's list is one TX update (a lone Delta, applied without the loop) and runs
    only when a response came (phase 4 not at all, as in the proxy for a response type it
    does not inspect): phase 5 (4 reads what it set) must tell the two stores apart
    although both come from the same phase 2."""
    w = waf(r"""
SecRuleEngine On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecAction "id:3,phase:3,pass,nolog,setvar:tx.r=1"
SecRule TX:r "@streq 1" "id:4,phase:5,pass,nolog,setvar:tx.seen=1"
""")
    assert 3 in w.lone_deltas and 5 in w.whole_memos

    def seen(response: bool):
        tx = w.transaction(view(b"/"))
        tx.phase1()
        tx.phase2(None)
        if response:
            tx.phase3(200, [(b"content-type", b"text/plain")])
        tx.phase5()
        return tx.variables.get("seen")
    for _ in range(8):
        assert seen(True) == b"1"
        assert seen(False) is None


def test_the_first_two_sightings_evaluate(monkeypatch):
    fast = waf(RULES)
    spy = _Spy(monkeypatch)
    req = _request(b"/a", [], [(b"x-ok", b"1")], b"GET")
    counts = []
    for _ in range(5):
        spy.phases.clear()
        run(fast, **req)
        counts.append(spy.phases.count(1))
    # atoms: the 3rd request takes their list; its records: seen on the 3rd, made on the
    # 4th, replayed from the 5th
    assert counts == [1, 1, 1, 1, 0]


def test_a_request_that_logs_or_is_denied_is_always_evaluated(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    logs = _request(b"/a", [], [(b"x-ok", b"1")], b"DELETE")  # 14 logs in phase 1
    denied = _request(b"/a", [b"a=attack"], [], b"GET")
    for _ in range(6):
        _same(pair, **logs)
        assert _same(pair, **denied)[2] == 12
    spy.phases.clear()
    _same(pair, **logs)
    _same(pair, **denied)
    assert spy.phases.count(1) == 4  # both requests, in both WAFs


def test_a_removal_by_id_in_effect_evaluates(pair, monkeypatch):
    spy = _Spy(monkeypatch)
    req = _request(b"/b.txt", [b"drop=1", b"q=5"], [], b"GET")
    for _ in range(6):
        matches, tx, *_rest = _same(pair, **req)
        assert ("num", b"5") not in tx  # 21 removed
    spy.phases.clear()
    _same(pair, **req)
    assert spy.phases.count(2) == 2  # phase 2 runs the loop in both WAFs


def test_the_start_state_must_be_the_recorded_one(pair):
    """Phase 2's records hold TX as phase 1 left it: a request whose phase 1 differs
    (another header) reaches phase 2 with another store and is evaluated."""
    a = _request(b"/b.txt", [b"q=1"], [(b"x-ok", b"1")], b"GET")
    b = _request(b"/b.txt", [b"q=1"], [(b"x-bad", b"1")], b"GET")
    for _ in range(5):
        _same(pair, **a)
        _same(pair, **b)


@pytest.mark.parametrize("first, second", [
    ([b"t=red"], [b"t=blue"]),  # phase 2 reads the same, from another TX store
    ([b"o=1"], [b"o=2"]),  # the same TX keys and values, in another order
])
def test_phase_2_records_hold_the_store_it_started_from(pair, first, second):
    """Phase 1 ends with the same MATCHED_VAR (17) for both requests; phase 2 reads only
    TX, so both have the same inputs there."""
    for _ in range(5):
        for args in (first, second):
            _same(pair, **_request(b"/a", args, [], b"GET"))


@pytest.mark.parametrize("args", [[b"mv=1"], [b"rm=1"], [b"mv=1", b"rm=1"]])
def test_a_replayed_phase_removes_and_moves_keys_as_evaluated(pair, args):
    """28 removes TX:score and sets it again (it moves to the end), 29 removes a key."""
    for _ in range(6):
        _same(pair, **_request(b"/a", args, [], b"GET"))


def test_phase_2_records_hold_matched_var_as_phase_1_left_it(pair):
    """GET and PUT leave the same TX store; MATCHED_VAR (17) differs, and 26 reads it."""
    for _ in range(5):
        for method in (b"GET", b"PUT"):
            _same(pair, **_request(b"/a", [], [], method))


def test_records_are_bounded(monkeypatch, pair):
    fast, _plain = pair
    monkeypatch.setattr(listmemo, "MEMO_MAX", 6)
    for i in range(20):
        for _ in range(4):
            _same(pair, **_request(b"/f%d.txt" % i, [], [], b"GET"))
    for plan in fast.empty_plans.values():
        budget = getattr(plan, "list_budget", None)
        if budget is not None:
            held = sum(len(m.memo) for m in budget.memos)
            assert held <= 6 and budget.entries == held


@pytest.mark.parametrize("req", [
    _request(b"/" + b"a" * listmemo.KEY_MAX, [], [], b"GET"),  # a long request line
    _request(b"/a", [b"q=" + b"7" * listmemo.KEY_MAX], [], b"GET"),  # a long MATCHED_VAR
])
def test_long_inputs_are_not_recorded(pair, req):
    """Inputs over KEY_MAX bytes, MATCHED_VAR included (21 matches the long q; phases 3
    to 5 start with it), are never kept, not even as a first sighting."""
    from revproxy.firewall.seclang import chainmemo

    fast, _plain = pair
    for _ in range(5):
        _same(pair, **req)
    memos = [m for plan in fast.empty_plans.values()
             for m in getattr(plan, "list_budget", listmemo.Budget()).memos]
    memos += list(fast.whole_memos.values())
    assert memos and all(chainmemo._size(k[3:]) <= listmemo.KEY_MAX
                         for m in memos for k in m.memo)


def test_a_list_reading_the_time_does_not_qualify():
    w = waf(r"""
SecRuleEngine On
SecRule REQUEST_HEADERS "@rx attack" "id:1,phase:1,pass,log"
SecRule TIME_SEC "@lt 0" "id:2,phase:1,pass,nolog,setvar:tx.t=1"
""")
    for _ in range(5):
        run(w, uri=b"/")
    built = [listed[3][0] for listed in w.empty_plans[1]._pairs.values()
             if listed[3][0] is not None]  # (the atoms' list: the time rule alone)
    assert built == [False]


requests = st.builds(_request, st.sampled_from(PATHS),
                     st.lists(st.sampled_from(ARGS), max_size=2),
                     st.lists(st.sampled_from(HEADERS), max_size=3),
                     st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]),
                     st.sampled_from(BODIES))


@settings(max_examples=120, deadline=None)
@given(st.lists(requests, min_size=1, max_size=8), st.lists(st.integers(1, 5), min_size=8,
                                                            max_size=8))
def test_random_sequences_decide_and_leave_the_transaction_as_without(reqs, times):
    same_over_sequence(with_and_without(listmemo, RULES), _outcome, reqs, times)


class _Ev:  # what _Record reads of an Evaluator
    class vars:
        matched_var = matched_var_name = b""
        matched: list = []
        rule = None
    failed = None


ops = st.lists(st.tuples(st.sampled_from(["set", "del"]), st.sampled_from("abcdefg"),
                         st.sampled_from([b"1", b"2", b"3"])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefg"), st.sampled_from([b"1", b"2"])), ops)
def test_a_record_rebuilds_the_end_store_in_its_order(start, changes):
    """The fewest operations a record keeps give the store the phase ended with, keys,
    values and order, from the store it started from (any sets and deletions between)."""
    end = dict(start)
    for op, k, v in changes:
        if op == "set":
            end[k] = v
        else:
            end.pop(k, None)
    record = listmemo._Record(dict(start), end, (), _Ev, 0, 0)
    tx = dict(start)
    for k in record.pops:
        del tx[k]
    tx.update(record.in_place)
    tx.update(record.appends)
    assert list(tx.items()) == list(end.items())
