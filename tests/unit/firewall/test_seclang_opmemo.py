"""Operator arguments with macros expanded once per match rather than once per value
(rules.op_memoisable, Evaluator._eval_general): a match whose effects change what the
macro reads is seen by the next value, exactly as when every value expands it."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from hypothesis import given, settings, strategies as st

from revproxy.firewall.seclang import rules
from tests.unit.firewall.seclang_helpers import ids, run, waf

RULES = r"""
SecAction "id:1,phase:1,pass,nolog,setvar:tx.limit=%d,setvar:tx.word=a"
SecRule ARGS "@gt %%{tx.limit}" "id:2,phase:2,pass,log,t:length,setvar:tx.limit=+%d,setvar:tx.hits=+1"
SecRule ARGS "@contains %%{tx.word}" "id:3,phase:2,pass,log,setvar:tx.word=%%{matched_var}x,setvar:tx.seen=+1"
SecRule ARGS "@rx ^%%{tx.0}" "id:4,phase:2,pass,log,capture,setvar:tx.caps=+1"
"""


def _pair(limit: int, step: int):
    text = RULES % (limit, step)
    memo = waf(text)
    saved = rules.op_memoisable
    rules.op_memoisable = lambda argument: False
    try:
        plain = waf(text)
    finally:
        rules.op_memoisable = saved
    return memo, plain


def test_only_macro_arguments_off_the_clock_are_memoised():
    assert rules.op_memoisable("%{tx.limit}")
    assert rules.op_memoisable("^%{tx.0}-%{MATCHED_VAR}")
    assert not rules.op_memoisable("10")
    assert not rules.op_memoisable("%{DURATION}")
    assert not rules.op_memoisable("%{tx.a}%{TIME_SEC}")
    memo, plain = _pair(4, 10)
    assert all(r.op_memo for r in memo.all_rules if r.id in (2, 3, 4))
    assert not any(r.op_memo for r in plain.all_rules)


def test_a_match_that_raises_the_limit_is_seen_by_the_next_value():
    """Lengths 5, 12, 25, 30 against a limit of 4 raised by 10 per match: 5, 25 and 30
    exceed the limit they meet (4, 14, 24), 12 does not."""
    memo, _ = _pair(4, 10)
    tx = run(memo, b"/?a=12345&b=" + b"x" * 12 + b"&c=" + b"y" * 25 + b"&d=" + b"z" * 30)
    assert tx.variables["hits"] == b"3" and tx.variables["limit"] == b"34"


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(0, 20), step=st.integers(-5, 10),
       values=st.lists(st.text(alphabet="abx", max_size=25), min_size=1, max_size=6))
def test_same_logs_and_tx_as_expanding_for_every_value(limit, step, values):
    memo, plain = _pair(limit, step)
    uri = ("/?" + "&".join("k%d=%s" % (i, quote_from_bytes(v.encode()))
                           for i, v in enumerate(values))).encode()
    a, b = run(memo, uri), run(plain, uri)
    assert ids(a) == ids(b) and a.variables == b.variables
