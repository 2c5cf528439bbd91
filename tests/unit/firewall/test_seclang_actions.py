"""Actions, ctl and macros: setvar forms, metadata, capture, ctl options, macro expansion."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from revproxy.firewall.seclang.actions import to_int
from revproxy.firewall.seclang.api import Interruption
from revproxy.firewall.seclang.macros import Macro
from tests.unit.firewall.seclang_helpers import ids, run, waf


def test_setvar_set_add_subtract_delete_and_flag():
    w = waf('SecAction "id:1,phase:1,pass,setvar:tx.a=5,setvar:tx.a=+3,setvar:TX.b=10,'
            "setvar:tx.b=-4,setvar:tx.flag,setvar:'tx.c=x y',setvar:!tx.c\"\n")
    assert run(w).variables == {"a": b"8", "b": b"6", "flag": b"1"}


def test_setvar_names_and_values_expand_macros_and_names_fold_case():
    w = waf('SecRule ARGS:q "@rx (\\d+)" "id:7,phase:1,pass,capture,'
            "setvar:'tx.%{rule.id}-%{MATCHED_VAR_NAME}=%{TX.1}',setvar:tx.Sum=+%{tx.1}\"\n")
    assert run(w, b"/?q=a42").variables == {"0": b"42", "1": b"42", "7-args:q": b"42",
                                            "sum": b"42"}


def test_setvar_arithmetic_on_non_numbers_counts_them_as_zero():
    w = waf('SecAction "id:1,phase:1,pass,setvar:tx.a=abc,setvar:tx.a=+2"\n')
    assert run(w).variables["a"] == b"2"


@given(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6))
def test_to_int_parses_leading_integers_like_modsecurity(a, b):
    assert to_int(b"%d" % a) == a
    assert to_int(b" %dabc" % b) == b


def _reference_to_int(value: bytes) -> int:
    """ModSecurity's reading, spelt out: leading blanks, a sign, the digits after it."""
    s = value.strip()
    sign, digits = 1, s
    if s[:1] in (b"-", b"+"):
        sign, digits = (-1 if s[:1] == b"-" else 1), s[1:]
    n = 0
    for c in digits:
        if not 48 <= c <= 57:
            break
        n = n * 10 + c - 48
    return sign * n


@given(st.one_of(st.binary(max_size=24), st.text("0123456789", max_size=40).map(str.encode),
                 st.text("0123456789+- \t", max_size=24).map(str.encode)))
def test_to_int_reads_any_value_as_the_reference(value):
    """Digits alone take a shortcut: any bytes must give what the general reading gives."""
    assert to_int(value) == _reference_to_int(value)


def test_to_int_of_a_huge_number_is_zero_not_an_error():
    """(int() refuses more than 4,300 digits: the engine reads 0, as before the shortcut.)"""
    assert to_int(b"9" * 5000) == 0 and to_int(b"+" + b"9" * 5000) == 0


def test_metadata_reaches_the_match_record():
    w = waf("SecRule ARGS:q \"@rx ev(il)\" \"id:5,phase:1,pass,log,capture,severity:2,"
            "msg:'Bad %{MATCHED_VAR_NAME}',logdata:'Matched %{TX.0} in %{MATCHED_VAR}',"
            "tag:'attack-x',tag:'paranoia-level/1',ver:'v1',rev:'2'\"\n")
    (m,) = run(w, b"/?q=xevilx").matches
    assert (m.rule_id, m.phase, m.msg, m.logdata, m.severity, m.tags, m.variable,
            m.value, m.disruptive) == (
        5, 1, b"Bad ARGS:q", b"Matched evil in xevilx", "CRITICAL",
        ("attack-x", "paranoia-level/1"), "ARGS:q", b"xevilx", False)


def test_capture_fills_tx_0_to_9_and_clears_stale_groups():
    w = waf('SecRule ARGS:a "@rx (x)(y)(z)" "id:1,phase:1,pass,capture"\n'
            'SecRule ARGS:b "@rx (q)" "id:2,phase:1,pass,capture"\n')
    tx = run(w, b"/?a=xyz&b=q")
    assert {k: v for k, v in tx.variables.items()} == {"0": b"q", "1": b"q"}


def test_status_applies_to_deny_and_severity_names_are_accepted():
    w = waf('SecAction "id:1,phase:1,deny,status:429,severity:WARNING"\n')
    tx = run(w)
    assert tx.interruption == Interruption("deny", 429, 1)
    assert tx.matches[0].severity == "WARNING"


def test_drop_is_an_interruption_of_its_own():
    assert run(waf('SecAction "id:1,phase:1,drop"\n')).interruption.action == "drop"


def test_setenv_sets_env_for_the_transaction():
    w = waf('SecAction "id:1,phase:1,pass,nolog,setenv:flag=%{REQUEST_METHOD}"\n'
            'SecRule ENV:flag "@streq GET" "id:2,phase:1,log"\n')
    assert ids(run(w)) == [2]


def test_accepted_no_effect_actions_load():
    waf('SecAction "id:1,phase:1,pass,expirevar:tx.a=10,initcol:ip=%{REMOTE_ADDR},'
        'sanitiseArg:x,auditlog,noauditlog,maturity:1,accuracy:2"\n')


def test_ctl_rule_remove_by_id_range_and_tag_affect_only_this_transaction():
    w = waf('SecRule ARGS:off "1" "id:1,phase:1,pass,nolog,ctl:ruleRemoveById=10-19,'
            'ctl:ruleRemoveByTag=t2"\n'
            'SecAction "id:10,phase:1,log"\nSecAction "id:15,phase:2,log"\n'
            'SecAction "id:20,phase:1,log,tag:t2"\nSecAction "id:30,phase:1,log"\n')
    assert ids(run(w, b"/?off=1")) == [30]
    assert ids(run(w, b"/")) == [10, 20, 30, 15]


def test_ctl_rule_remove_target_by_id_and_tag_including_regex_keys():
    w = waf('SecAction "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=10;ARGS:a,'
            'ctl:ruleRemoveTargetByTag=t;ARGS:/^b/"\n'
            'SecRule ARGS "x" "id:10,phase:1,log"\n'
            'SecRule ARGS "x" "id:11,phase:1,log,tag:t"\n')
    tx = run(w, b"/?a=x&bb=x")
    assert [(m.rule_id, m.variable) for m in tx.matches] == [(10, "ARGS:bb"), (11, "ARGS:a")]


def test_ctl_rule_remove_target_by_id_removes_a_tx_key_and_a_tx_count():
    """``ctl:ruleRemoveTargetById=N;TX:name`` takes ``TX:name`` (and only it) away from
    rule N, read directly or counted; a rule it does not name still sees it."""
    w = waf('SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2,setvar:tx.other=2,'
            'ctl:ruleRemoveTargetById=10;TX:level,ctl:ruleRemoveTargetById=11;TX:level,'
            'ctl:ruleRemoveTargetById=13;TX:level"\n'
            'SecRule TX:level|TX:other "@eq 2" "id:10,phase:1,pass,log"\n'
            'SecRule TX:level "@eq 2" "id:11,phase:1,pass,log"\n'
            'SecRule TX:level "@eq 2" "id:12,phase:1,pass,log"\n'
            'SecRule &TX:level "@eq 0" "id:13,phase:1,pass,log"\n')
    tx = run(w)
    assert [(m.rule_id, m.variable) for m in tx.matches] == [
        (10, "TX:other"), (12, "TX:level"), (13, "TX:level")]


def test_ctl_rule_engine_switches_modes_mid_transaction():
    w = waf('SecAction "id:1,phase:1,pass,nolog,ctl:ruleEngine=DetectionOnly"\n'
            'SecAction "id:2,phase:1,deny,log"\n')
    tx = run(w)
    assert tx.interruption is None and ids(tx) == [2]
    w = waf('SecAction "id:1,phase:1,pass,nolog,ctl:ruleEngine=Off"\n'
            'SecAction "id:2,phase:1,deny,log"\n')
    assert ids(run(w)) == []


def test_ctl_request_body_processor_picks_the_parser():
    w = waf('SecRequestBodyAccess On\n'
            'SecRule REQUEST_HEADERS:Content-Type "json" "id:1,phase:1,pass,nolog,'
            'ctl:requestBodyProcessor=JSON"\n'
            'SecRule REQBODY_PROCESSOR "@streq JSON" "id:2,phase:1,log"\n'
            'SecRule ARGS:json.a "@streq b" "id:3,phase:2,log"\n')
    tx = run(w, method=b"POST", headers=((b"content-type", b"application/json"),),
             body=b'{"a": "b"}')
    assert ids(tx) == [2, 3]


def test_ctl_force_request_body_variable_fills_request_body():
    w = waf('SecRequestBodyAccess On\n'
            'SecAction "id:1,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"\n'
            'SecRule REQUEST_BODY "@contains hello" "id:2,phase:2,log"\n')
    assert ids(run(w, method=b"POST", body=b"hello",
                   headers=((b"content-type", b"text/plain"),))) == [2]
    w = waf('SecRequestBodyAccess On\n'
            'SecRule REQUEST_BODY "@contains hello" "id:2,phase:2,log"\n')
    assert ids(run(w, method=b"POST", body=b"hello",
                   headers=((b"content-type", b"text/plain"),))) == []


@pytest.mark.parametrize("text, expected", [
    ("plain", b"plain"),
    ("%{tx.a}-%{TX:a}", b"1-1"),
    ("%{REQUEST_HEADERS.host}", b"example.com"),
    ("%{request_headers.HOST}", b"example.com"),
    ("%{ARGS.q}", b"v"),
    ("%{rule.id}|%{rule.msg}", b"9|msg 1"),
    ("%{tx.missing}", b""),
    ("%{REQUEST_METHOD} %{request_line}", b"GET GET /p?q=v HTTP/1.1"),
    ("100%{", b"100%{"),
    ("%{unique_id}", b"rid-1"),
])
def test_macro_expansion(text, expected):
    w = waf("SecAction \"id:9,phase:1,pass,nolog,msg:'msg %{tx.a}',setvar:tx.a=1,"
            "setvar:'tx.out=" + text + "'\"\n")
    assert run(w, b"/p?q=v").variables["out"] == expected


def test_macro_without_references_is_constant():
    assert Macro("abc").constant == b"abc" and Macro("%{tx.a}").constant is None
