"""Shared helpers for the engine's unit tests: a WAF from SecLang text (with the shipped
operators, transformations and body processors unless a test passes ``components``) and
request views."""

from __future__ import annotations

from revproxy.firewall.seclang.api import RequestView
from revproxy.firewall.seclang.engine import default_components, load_waf


def waf(text: str, **kw):
    kw.setdefault("components", default_components())
    return load_waf([("rules.conf", text)], **kw)


def view(uri: bytes = b"/", method: bytes = b"GET", headers=(), remote: str = "10.0.0.1"):
    hs = ((b"host", b"example.com"),) + tuple(headers)
    return RequestView(remote, 5555, "127.0.0.1", 80, method, uri, b"HTTP/1.1", hs, b"rid-1")


def run(w, uri: bytes = b"/", method: bytes = b"GET", headers=(), body=None, response=None):
    """Run phases 1-5 (stopping at an interruption like the proxy); returns the tx."""
    tx = w.transaction(view(uri, method, headers))
    if tx.phase1() is None and tx.phase2(body) is None and response is not None:
        status, rheaders, rbody = response
        if tx.phase3(status, rheaders) is None:
            tx.phase4(rbody)
    tx.phase5()
    return tx


def ids(tx):
    return [m.rule_id for m in tx.matches]


def with_and_without_prefilter(rules: str):
    """(the rules loaded with the RE2 prefilter, the same rules loaded without it); skips
    where google-re2 is missing (PyPy)."""
    import pytest

    from revproxy.firewall.seclang import prefilter

    if not prefilter.AVAILABLE:
        pytest.skip("google-re2 is not installed (PyPy): no prefilter")
    fast = waf(rules)
    mp = pytest.MonkeyPatch()
    mp.setattr(prefilter, "_re2", None)
    try:
        plain = waf(rules)
    finally:
        mp.undo()
    return fast, plain


def same_outcome(pair, outcome, **kw):
    """Run one request (``run``'s keywords) through both WAFs of ``pair`` (as
    ``with_and_without`` gives them) and check ``outcome(tx)`` is the same; returns it."""
    a, b = (outcome(run(w, **kw)) for w in pair)
    assert a == b, kw
    return a


def same_over_sequence(pair, outcome, reqs, times):
    """``same_outcome`` for each request of ``reqs`` (``run``'s keywords), the i-th sent
    ``times[i]`` times in a row: a warm WAF learning from the requests before."""
    for req, n in zip(reqs, times):
        for _ in range(n):
            same_outcome(pair, outcome, **req)


def with_and_without(module, rules: str, **kw):
    """(``rules`` loaded as usual, the same rules loaded with ``module.ENABLED`` False): a
    shortcut's differential tests compare the two."""
    on = waf(rules, **kw)
    saved = module.ENABLED
    module.ENABLED = False
    try:
        return on, waf(rules, **kw)
    finally:
        module.ENABLED = saved


def evaluated(w, **kw):
    """The ids of the rules and links the general loop evaluated on one ``run``."""
    from revproxy.firewall.seclang import evaluate

    seen = []
    original = evaluate.Evaluator._eval_general

    def spy(self, rule, detect):
        seen.append(rule.id)
        return original(self, rule, detect)
    evaluate.Evaluator._eval_general = spy
    try:
        run(w, **kw)
    finally:
        evaluate.Evaluator._eval_general = original
    return seen
