"""The CRS v4.28.0 regression suite (go-ftw YAML) at paranoia level 1 against the engine.

Judged by logged rule ids (see tests/firewall/ftw.py). The floor is the pass rate reached
when this was written (2885 of 2892 PL1 tests; the 7 others: 6 requests the proxy's strict
HTTP/1.1 parser refuses and one httpd-specific expectation, listed in
docs/firewall-crs-results.md); a drop below it is a regression somewhere in the engine,
operators, transformations or body processors.
"""

from __future__ import annotations

import pytest

from tests.firewall import ftw

PASS_RATE_FLOOR = 0.997
MIN_PL1_TESTS = 2800     # the suite must not shrink to nothing unnoticed
MAX_REFUSED_FAILING = 6  # strict-parser refusals that the tests do not expect

CRS = ftw.crs_dir()


def _components():
    try:
        from revproxy.firewall.seclang.engine import default_components
        return default_components()
    except ImportError as exc:  # a piece of the engine is not merged on this branch yet
        pytest.skip("the engine's operators/transformations/body processors are not "
                    "importable here (%s)" % exc)


@pytest.fixture(scope="module")
def crs_waf():
    if CRS is None:
        pytest.skip("CRS v4.28.0 not found (../shared/crs-v4.28.0 or $REVPROXY_CRS_DIR)")
    pytest.importorskip("yaml", reason="PyYAML (test extra) is needed to read go-ftw files")
    return ftw.load_crs(CRS, _components())


def test_crs_loads_unchanged_with_every_rule(crs_waf):
    """Every CRS v4.28.0 rule file loads; the PL1 blocking rule is there."""
    assert len(crs_waf.rule_ids) > 600 and 949110 in crs_waf.rule_ids
    assert crs_waf.warnings == []


def test_pl1_regression_pass_rate_stays_at_its_floor(crs_waf):
    """The PL1 go-ftw tests pass at no less than the rate reached (>= 97% is the target)."""
    cases = ftw.select_pl1(crs_waf, ftw.load_cases(CRS))
    results = ftw.run(crs_waf, cases)
    s = ftw.summary(results)
    failed = ["%d-%d %s %s" % (r.case.rule_id, r.case.test_id, r.cause, r.detail)
              for r in results if not r.passed]
    assert s["total"] >= MIN_PL1_TESTS
    assert s["rate"] >= PASS_RATE_FLOOR, "\n".join(failed)
    assert s["failures_by_cause"].get("engine error", 0) == 0, "\n".join(failed)
    assert s["failures_by_cause"].get("refused by the strict parser", 0) <= MAX_REFUSED_FAILING


def test_an_attack_is_logged_and_blocked_at_pl1_in_enforcement(crs_waf):
    """Outside the suite's DetectionOnly, a SQL injection is denied by 949110."""
    from revproxy.firewall.seclang.engine import load_waf
    sources = ftw.crs_sources(CRS)
    sources[0] = ("<engine.conf>", ftw.ENGINE_CONF.replace("SecRuleEngine DetectionOnly",
                                                           "SecRuleEngine On"))
    waf = load_waf(sources, components=_components())
    ids, _ = ftw.run_stage(waf, b"GET /?id=1%27%20or%20%271%27=%271 HTTP/1.1\r\n"
                                b"Host: localhost\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")
    assert 942100 in ids and 949110 in ids
    view = ftw.RequestView("127.0.0.1", 1, "127.0.0.1", 80, b"GET",
                           b"/?id=1%27%20or%20%271%27=%271", b"HTTP/1.1",
                           ((b"host", b"localhost"), (b"user-agent", b"t"), (b"accept", b"*/*")))
    tx = waf.transaction(view)
    assert tx.phase1() is None
    interruption = tx.phase2(None)
    assert interruption is not None and interruption.rule_id == 949110
    assert interruption.status == 403 and tx.anomaly_score >= 5
