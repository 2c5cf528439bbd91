"""Engine flow: phases, order, chains, skip/skipAfter/SecMarker, defaults, modes, limits."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang.api import Interruption
from tests.unit.firewall.seclang_helpers import ids, run, view, waf


def test_rules_run_by_phase_then_load_order_not_by_id():
    w = waf('SecAction "id:1,phase:3,log"\nSecAction "id:150,phase:2,log"\n'
            'SecAction "id:300,phase:1,log"\n')
    assert ids(run(w, response=(200, [], b""))) == [300, 150, 1]


def test_deny_interrupts_with_status_and_stops_later_rules_and_phases():
    w = waf('SecRule ARGS:q "@rx evil" "id:1,phase:1,deny,status:406"\n'
            'SecAction "id:2,phase:1,log"\nSecAction "id:3,phase:2,log"\n')
    tx = w.transaction(view(b"/?q=evil"))
    assert tx.phase1() == Interruption("deny", 406, 1)
    assert tx.phase2(None) == Interruption("deny", 406, 1)
    assert ids(tx) == [1] and tx.matches[0].disruptive
    assert tx.interruption.rule_id == 1


def test_deny_defaults_to_403_and_redirect_to_302_with_expanded_url():
    w = waf('SecRule ARGS:q "a" "id:1,phase:1,deny"\n'
            'SecRule ARGS:r "b" "id:2,phase:1,redirect:http://x/%{ARGS.r}"\n')
    assert run(w, b"/?q=a").interruption == Interruption("deny", 403, 1)
    assert run(w, b"/?r=b").interruption == Interruption("redirect", 302, 2, b"http://x/b")


def test_detection_only_logs_but_never_interrupts():
    w = waf('SecRuleEngine DetectionOnly\nSecRule ARGS "evil" "id:1,phase:1,deny"\n')
    tx = run(w, b"/?q=evil")
    assert tx.interruption is None and ids(tx) == [1] and not tx.matches[0].disruptive


def test_engine_off_evaluates_nothing():
    w = waf('SecRuleEngine Off\nSecAction "id:1,phase:1,log,deny"\n')
    tx = run(w)
    assert tx.interruption is None and tx.matches == []


def test_block_resolves_to_the_phase_default_action():
    """``block`` does what the phase's SecDefaultAction says; pass when none is set."""
    w = waf('SecDefaultAction "phase:1,log,deny,status:418"\n'
            'SecRule ARGS "x" "id:1,phase:1,block"\nSecRule ARGS "y" "id:2,phase:2,block"\n')
    assert run(w, b"/?a=x").interruption == Interruption("deny", 418, 1)
    tx = run(w, b"/?a=y")
    assert tx.interruption is None and ids(tx) == [2]


def test_default_action_transformations_apply_unless_t_none():
    w = waf('SecDefaultAction "phase:1,log,pass,t:lowercase"\n'
            'SecRule ARGS "@streq abc" "id:1,phase:1"\n'
            'SecRule ARGS "@streq abc" "id:2,phase:1,t:none"\n')
    assert ids(run(w, b"/?a=ABC")) == [1]


def test_nolog_rules_match_silently():
    w = waf('SecRule ARGS "x" "id:1,phase:1,pass,nolog,setvar:tx.hit=1"\n'
            'SecRule TX:hit "@eq 1" "id:2,phase:1,pass,log"\n')
    assert ids(run(w, b"/?a=x")) == [2]


def test_chain_matches_only_when_every_link_matches_and_logs_the_starter_id():
    w = waf('SecRule REQUEST_METHOD "POST" "id:1,phase:1,log,chain"\n'
            '  SecRule ARGS:a "1" "setvar:tx.child=1"\n')
    assert ids(run(w, b"/?a=1", method=b"POST")) == [1]
    assert ids(run(w, b"/?a=2", method=b"POST")) == []
    assert ids(run(w, b"/?a=1")) == []


def test_chain_effects_run_per_link_even_when_a_later_link_fails():
    """Non-disruptive actions of a link run when that link matches (ModSecurity)."""
    w = waf('SecRule ARGS:a "1" "id:1,phase:1,pass,nolog,setvar:tx.first=1,chain"\n'
            '  SecRule ARGS:b "2" "setvar:tx.second=1"\n')
    tx = run(w, b"/?a=1&b=3")
    assert tx.variables == {"first": b"1"}


def test_chain_child_sees_the_parents_captures_and_matched_vars():
    w = waf('SecRule ARGS "@rx (ab)(c)" "id:1,phase:1,log,capture,chain,'
            "logdata:'%{TX.0}|%{TX.1}|%{MATCHED_VAR_NAME}'\"\n"
            '  SecRule TX:1 "@streq ab" "chain"\n'
            '  SecRule MATCHED_VARS_NAMES "@streq TX:1"\n')
    tx = run(w, b"/?k=xabcx")
    assert ids(tx) == [1]
    assert tx.matches[0].logdata == b"abc|ab|TX:1"


def test_skip_after_jumps_to_the_marker_in_the_current_phase():
    w = waf('SecAction "id:1,phase:1,pass,nolog,skipAfter:END"\n'
            'SecAction "id:2,phase:1,log"\nSecAction "id:3,phase:2,log"\n'
            'SecMarker END\nSecAction "id:4,phase:1,log"\n')
    assert ids(run(w)) == [4, 3]


def test_skip_after_an_unknown_marker_skips_the_rest_of_the_phase():
    w = waf('SecAction "id:1,phase:1,pass,nolog,skipAfter:NOWHERE"\n'
            'SecAction "id:2,phase:1,log"\nSecAction "id:3,phase:2,log"\n')
    assert ids(run(w)) == [3]


def test_skip_counts_rules_of_the_same_phase():
    w = waf('SecAction "id:1,phase:1,pass,nolog,skip:1"\nSecAction "id:2,phase:2,log"\n'
            'SecAction "id:3,phase:1,log"\nSecAction "id:4,phase:1,log"\n')
    assert ids(run(w)) == [4, 2]


def test_allow_skips_the_remaining_request_and_response_phases_but_not_logging():
    w = waf('SecRule REMOTE_ADDR "@ipMatch 10.0.0.1" "id:1,phase:1,allow,nolog"\n'
            'SecAction "id:2,phase:1,log,deny"\nSecAction "id:3,phase:3,log"\n'
            'SecAction "id:5,phase:5,log"\n')
    tx = run(w, response=(200, [], b""))
    assert tx.interruption is None and ids(tx) == [5]


def test_allow_request_skips_request_phases_only():
    w = waf('SecAction "id:1,phase:1,allow:request,nolog"\nSecAction "id:2,phase:2,log"\n'
            'SecAction "id:3,phase:3,log"\n')
    assert ids(run(w, response=(200, [], b""))) == [3]


def test_allow_phase_stops_only_the_current_phase():
    w = waf('SecAction "id:1,phase:1,allow:phase,nolog"\nSecAction "id:2,phase:1,log"\n'
            'SecAction "id:3,phase:2,log"\n')
    assert ids(run(w)) == [3]


def test_modes_off_removes_a_rule_and_detect_logs_without_effects():
    text = ('SecRule ARGS "x" "id:1,phase:1,deny,setvar:tx.a=1,ctl:ruleRemoveById=2"\n'
            'SecAction "id:2,phase:1,log"\n')
    w = waf(text, modes={1: "detect"})
    tx = run(w, b"/?q=x")
    assert tx.interruption is None and ids(tx) == [1, 2] and tx.variables == {}
    assert not tx.matches[0].disruptive
    w = waf(text, modes={1: "off"})
    assert ids(run(w, b"/?q=x")) == [2] and 1 not in w.rule_ids


def test_multimatch_runs_the_operator_before_and_after_each_transformation():
    w = waf('SecRule ARGS "@streq AB" "id:1,phase:1,pass,log,t:lowercase,multiMatch,'
            'setvar:tx.n=+1"\n'
            'SecRule ARGS "@streq AB" "id:2,phase:1,pass,log,t:lowercase"\n')
    tx = run(w, b"/?a=AB")
    assert ids(tx) == [1] and tx.variables["n"] == b"1"


def test_pass_rule_runs_its_effects_once_per_matched_value():
    w = waf('SecRule ARGS "x" "id:1,phase:1,pass,nolog,setvar:tx.n=+1"\n')
    assert run(w, b"/?a=x&b=x&c=y").variables["n"] == b"2"


def test_work_limit_stops_evaluation_and_denies_in_enforcement():
    w = waf('SecRule ARGS "@contains nomatch" "id:1,phase:1,pass"\n'
            'SecRule ARGS "@contains nomatch" "id:2,phase:1,pass"\n', work_limit=3)
    tx = run(w, b"/?a=1&b=2")
    assert tx.interruption == Interruption("deny", 403, 0)
    assert tx.matches[-1].msg == b"inspection work limit exceeded"


def test_request_body_over_the_limit_is_rejected_with_413():
    w = waf("SecRequestBodyAccess On\nSecRequestBodyNoFilesLimit 10\n"
            'SecAction "id:1,phase:2,log"\n')
    tx = run(w, method=b"POST", body=b"x" * 11,
             headers=((b"content-type", b"application/x-www-form-urlencoded"),))
    assert tx.interruption == Interruption("deny", 413, 0) and ids(tx) == [0]


def test_request_body_over_the_limit_is_truncated_with_process_partial():
    w = waf("SecRequestBodyAccess On\nSecRequestBodyNoFilesLimit 5\n"
            "SecRequestBodyLimitAction ProcessPartial\n"
            'SecRule ARGS_POST:a "@streq 123" "id:1,phase:2,log"\n'
            'SecRule INBOUND_DATA_ERROR "@eq 1" "id:2,phase:2,log"\n')
    tx = run(w, method=b"POST", body=b"a=123456",
             headers=((b"content-type", b"application/x-www-form-urlencoded"),))
    assert ids(tx) == [1, 2] and tx.interruption is None


def test_transformation_cache_is_shared_across_rules_with_a_common_prefix():
    """The same (prefix, value) is transformed once per transaction."""
    calls = []
    from revproxy.firewall.seclang.engine import default_components
    comps = default_components()
    table = dict(comps.transforms)
    table["lowercase"] = lambda v: calls.append(v) or v.lower()
    comps = comps._replace(transforms=table)
    w = waf('SecRule ARGS "@streq zz" "id:1,phase:1,t:lowercase"\n'
            'SecRule ARGS "@streq zz" "id:2,phase:1,t:lowercase,t:urlDecode"\n'
            'SecRule ARGS "@streq zz" "id:3,phase:1,t:lowercase"\n', components=comps)
    run(w, b"/?a=ABC&b=DEF")
    assert sorted(calls) == [b"ABC", b"DEF"]


def test_phase5_runs_after_an_interruption_and_keeps_it():
    w = waf('SecAction "id:1,phase:1,deny"\nSecAction "id:2,phase:5,log,deny"\n')
    tx = run(w)
    assert ids(tx) == [1, 2] and tx.interruption.rule_id == 1


def test_waf_describe_ids_with_tag_and_anomaly_score():
    w = waf('SecAction "id:1,phase:1,pass,msg:\'m\',tag:a,tag:b,'
            'setvar:tx.blocking_inbound_anomaly_score=7"\n'
            'SecAction "id:2,phase:2,pass,tag:b"\n')
    assert w.describe()[1] == (1, "m", ("a", "b"))
    assert w.ids_with_tag("b") == frozenset({1, 2}) and w.ids_with_tag("zz") == frozenset()
    assert run(w).anomaly_score == 7 and w.engine_mode == "On"


def _counting_components():
    """(components whose operators record (argument, value) in ``calls``, calls); skips
    where google-re2 (the prefilter) is not installed."""
    from revproxy.firewall.seclang import prefilter
    if not prefilter.AVAILABLE:
        import pytest
        pytest.skip("google-re2 is not installed for this interpreter (PyPy)")
    calls = []
    from revproxy.firewall.seclang.engine import default_components
    comps = default_components()

    def build(name, arg, base):
        op = comps.build_operator(name, arg, base)

        def wrapped(v, e):
            calls.append((arg, v))
            return op(v, e)
        wrapped.phrases = getattr(op, "phrases", None)  # what the prefilter reads of @pm
        return wrapped
    return comps._replace(build_operator=build), calls


def test_prefilter_skips_rx_rules_that_cannot_match_and_keeps_those_that_can():
    """Grouped @rx rules run only when their RE2 set says a value may match; results,
    captures and exclusions are those of the rule itself."""
    comps, calls = _counting_components()
    w = waf('SecRule ARGS|!ARGS:skip "@rx (ev)il" "id:1,phase:1,log,capture,t:lowercase,'
            "logdata:'%{TX.1}'\"\n"
            'SecRule ARGS "@rx nothing-like-this" "id:2,phase:1,log,t:lowercase"\n'
            'SecRule REQUEST_HEADERS "@rx ^x$" "id:3,phase:1,log,t:lowercase"\n',
            components=comps)
    assert w.prefiltered == 3
    tx = run(w, b"/?a=EVIL&skip=evil&b=ok")
    assert [(m.rule_id, m.variable, m.logdata) for m in tx.matches] == [(1, "ARGS:a", b"ev")]
    assert {a for a, _ in calls} == {"(ev)il"}  # rules 2 and 3 never ran their operator
    calls.clear()
    assert ids(run(w, b"/?skip=evil")) == [] and calls == []


def test_prefilter_takes_pm_and_multimatch_rules_and_keeps_their_verdicts():
    """@pm phrases and multiMatch @rx join the RE2 sets (and the phase union): the
    operator runs only when a value (or an intermediate) may match; anchors hold per
    value although the union matches the values joined by newlines."""
    comps, calls = _counting_components()
    w = waf('SecRule ARGS "@pm alpha be.ta" "id:4,phase:1,log,t:lowercase"\n'
            'SecRule ARGS "@rx ^evil$" "id:5,phase:1,log,multiMatch,t:urlDecodeUni,'
            't:lowercase"\n'
            'SecRule ARGS "@rx ^ok$" "id:6,phase:1,log"\n',
            components=comps)
    assert w.prefiltered == 3
    assert ids(run(w, b"/?a=xevil&b=evilx&c=bexta&d=okk")) == [] and calls == []
    assert ids(run(w, b"/?a=ALPHAbet")) == [4]
    assert ids(run(w, b"/?a=BE.TA")) == [4]
    assert ids(run(w, b"/?z=1&a=EVIL&b=2")) == [5]       # a clean value, lowered
    assert ids(run(w, b"/?a=%2545vil")) == [5]            # dirty: %45 -> E -> e
    assert ids(run(w, b"/?a=1&b=ok&c=2")) == [6]
    # rule 6 matched last time ("hot"): it runs once more without asking for a scan
    assert ids(run(w, b"/?a=evi&b=l")) == []
    calls.clear()
    assert ids(run(w, b"/?a=evi&b=l")) == [] and calls == []


def test_a_rule_whose_first_link_matched_last_time_asks_for_no_scan():
    """A rule whose first link matched on the previous request (920170's method check,
    920450's header-name capture: on every request) runs without asking the prefilter
    for a union scan, which would only confirm it; once it stops matching it asks again.
    The verdicts are the prefilter's either way. (Each request brings a new value of q:
    a value seen clean for the second link would leave the chain out, cleanskip.py.)"""
    from revproxy.firewall.seclang import prefilter
    if not prefilter.AVAILABLE:
        import pytest
        pytest.skip("google-re2 is not installed for this interpreter (PyPy)")
    from revproxy.firewall.seclang.chains import Chains
    w = waf('SecRule REQUEST_METHOD "@rx ^(?:GET|HEAD)$" "id:1,phase:1,pass,log,chain"\n'
            '    SecRule ARGS "@rx evil" "t:none"\n'
            'SecRule ARGS "@rx ^zz" "id:2,phase:2,log"\n')
    first = next(r for r in w.all_rules if r.id == 1)  # the chain's first link
    scans = []
    original = Chains.group_hits

    def counting(self, group, rule):
        scans.append(rule)
        return original(self, group, rule)
    Chains.group_hits = counting
    try:
        run(w, b"/?q=1")
        assert scans[:1] == [first]  # cold: the first link asked for its group's hits
        scans.clear()
        assert ids(run(w, b"/?q=2")) == [] and first not in scans  # hot: no scan for it
        # (the second link still asks for its own; rule 2 sees a new value too)
        assert [r for r in scans if r.id == 1] == [first.child]
        assert ids(run(w, b"/?q=evil")) == [1]                  # still the same verdicts
        assert ids(run(w, b"/?q=zz", method=b"POST")) == [2]    # first link fails: cold
        scans.clear()
        run(w, b"/?q=3")
        assert first in scans
    finally:
        Chains.group_hits = original


def test_prefilter_remembers_header_values_without_changing_verdicts():
    """A header value holding bytes its chain reacts to goes through the group's chain and
    set once; later requests with the same value reuse the hits (same verdicts)."""
    from revproxy.firewall.seclang import prefilter
    if not prefilter.AVAILABLE:
        import pytest
        pytest.skip("google-re2 is not installed for this interpreter (PyPy)")
    w = waf('SecRule REQUEST_HEADERS:User-Agent|ARGS "@rx evil" '
            '"id:7,phase:1,log,t:urlDecodeUni"\n'
            'SecRule REQUEST_HEADERS "@rx ^bad$" "id:8,phase:1,log,t:urlDecodeUni"\n')
    ua = ((b"user-agent", b"x%65vil a"),)
    group = next(r.pre[0] for r in w.all_rules if r.id == 7)
    for _ in range(3):
        assert ids(run(w, headers=ua)) == [7]
    assert group.memo.get(b"x%65vil a") is not None
    for _ in range(2):
        assert ids(run(w, headers=((b"user-agent", b"x%20vil"),))) == []
        assert ids(run(w, headers=((b"x-a", b"%62ad"),))) == [8]
    assert ids(run(w, b"/?q=%2565vil")) == [7]        # ARGS: not remembered, still caught
    assert b"%65vil" not in group.memo
    # a client sending a new value each time: the memo stays bounded; long ones never kept
    for i in range(prefilter.MEMO_MAX + 20):
        run(w, headers=((b"user-agent", b"a%%20b-%d" % i),))
        assert len(group.memo) <= prefilter.MEMO_MAX
    long = b"%20" * prefilter.MEMO_VALUE_MAX
    assert ids(run(w, headers=((b"user-agent", long + b"%65vil"),))) == [7]
    assert long + b"%65vil" not in group.memo


_FUZZ_RULES = r'''
SecRequestBodyAccess On
SecResponseBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_HEADERS|XML:/* "@rx (?i)(select|<script)" \
    "id:2,phase:2,pass,log,capture,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,\
    logdata:'%{TX.0} in %{MATCHED_VAR_NAME}',setvar:tx.score=+%{tx.critical}"
SecRule REQUEST_FILENAME|REQUEST_BASENAME|QUERY_STRING "@pm etc passwd" "id:3,phase:2,pass,log,multiMatch,t:normalizePath"
SecRule &ARGS "@gt 3" "id:4,phase:2,pass,log"
SecRule REQBODY_ERROR "!@eq 0" "id:5,phase:2,pass,log"
SecRule RESPONSE_BODY "@contains secret" "id:6,phase:4,deny,log"
'''


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=60), st.lists(st.tuples(
    st.sampled_from([b"cookie", b"content-type", b"x-a", b"user-agent"]),
    st.binary(max_size=40)), max_size=4), st.one_of(st.none(), st.binary(max_size=120)),
    st.binary(max_size=60))
def test_any_request_evaluates_without_raising(uri, headers, body, response):
    """Whatever the bytes, the phases return None or an Interruption and never raise."""
    from revproxy.firewall.seclang.engine import load_waf
    w = _fuzz_waf(load_waf)
    tx = w.transaction(view(b"/" + uri, b"POST", headers))
    for result in (tx.phase1(), tx.phase2(body), tx.phase3(200, [(b"content-type",
                                                                  b"text/html")]),
                   tx.phase4(response)):
        assert result is None or isinstance(result, Interruption)
    tx.phase5()
    assert all(m.rule_id in (0, 2, 3, 4, 5, 6) for m in tx.matches)


_FUZZ = []


def _fuzz_waf(load_waf):
    if not _FUZZ:
        _FUZZ.append(load_waf([("fuzz.conf", _FUZZ_RULES)]))
    return _FUZZ[0]


CYCLE_RULES = r"""
SecRuleEngine On
SecRequestBodyAccess On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.limit=%{REQUEST_HEADERS.host}"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" "id:2,phase:1,pass,nolog,capture,setvar:'tx.h_%{tx.0}=1',chain"
    SecRule TX:/^h_/ "@within %{tx.limit}" "setvar:tx.score=+1"
SecRule ARGS "@rx (?i)evil" "id:3,phase:2,pass,log,t:lowercase"
SecRule ARGS:x "@streq %{tx.limit}" "id:4,phase:2,pass,log"
SecRule TX:score "@ge 1" "id:5,phase:2,deny,status:403,log,msg:'%{tx.score}'"
SecRule RESPONSE_STATUS "@rx ^5" "id:6,phase:3,pass,log"
"""


def test_a_finished_transaction_is_freed_without_the_cycle_collector():
    """No reference cycle runs through a transaction (a bound method of it kept on it
    made one): on CPython each is freed when the proxy drops it, not by the collector,
    which otherwise walked every dead transaction's values (26 µs of collector time per
    request through the proxy with the CRS)."""
    import gc
    import platform
    import weakref

    if platform.python_implementation() != "CPython":
        import pytest
        pytest.skip("PyPy frees nothing by reference counting")
    w = waf(CYCLE_RULES)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for uri in (b"/?x=a&y=evil", b"/?x=example.com", b"/p"):
            tx = run(w, uri, method=b"POST", body=b"z=1&evil=2",
                     headers=((b"content-type", b"application/x-www-form-urlencoded"),),
                     response=(500, [(b"content-type", b"text/html")], b"<p>x"))
            assert tx.vars.rule is not None  # (it ran)
            ref = weakref.ref(tx)
            del tx
            assert ref() is None
    finally:
        if enabled:
            gc.enable()
