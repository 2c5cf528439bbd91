"""Debian's OWASP CRS 3.3.4 (apt-get install modsecurity-crs) loads unchanged and detects.

Loaded the way Debian's ``owasp-crs.load`` does it (crs-setup.conf, the 900/999 exclusion
files, rules/*.conf), after the engine settings of ModSecurity's recommended config.
"""

from __future__ import annotations

import os

import pytest

from revproxy.firewall.seclang.api import RequestView
from tests.firewall.ftw import ENGINE_CONF

LOAD = "/usr/share/modsecurity-crs/owasp-crs.load"


@pytest.fixture(scope="module")
def crs3():
    if not os.path.exists(LOAD) or not os.path.exists("/etc/modsecurity/crs/crs-setup.conf"):
        pytest.skip("Debian's modsecurity-crs is not installed (scripts/setup-env installs it)")
    try:
        from revproxy.firewall.seclang.engine import default_components, load_waf
        comps = default_components()
    except ImportError as exc:
        pytest.skip("the engine's operators/transformations/body processors are not "
                    "importable here (%s)" % exc)
    with open(LOAD, encoding="utf-8") as f:
        text = f.read()
    engine = ENGINE_CONF.replace("SecRuleEngine DetectionOnly", "SecRuleEngine On")
    return load_waf([("<engine.conf>", engine), (LOAD, text)], components=comps)


def _run(waf, uri: bytes, headers=(), method=b"GET", body=None):
    hs = ((b"host", b"localhost"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
          (b"accept", b"text/html")) + tuple(headers)
    tx = waf.transaction(RequestView("192.0.2.1", 4000, "127.0.0.1", 80, method, uri,
                                     b"HTTP/1.1", hs, b"id"))
    if tx.phase1() is None:
        tx.phase2(body)
    return tx


def test_every_file_parses_and_only_geo_and_rbl_are_noted(crs3):
    """All CRS 3.3.4 rule files load; @geoLookup / @rbl are the documented exceptions."""
    assert len(crs3.rule_ids) > 500
    assert 949110 in crs3.rule_ids and 980130 in crs3.rule_ids
    assert all("@geoLookup" in w or "@rbl" in w for w in crs3.warnings)


def test_benign_request_passes_without_matches(crs3):
    tx = _run(crs3, b"/index.html?page=2&sort=name")
    assert tx.interruption is None and tx.matches == []


@pytest.mark.parametrize("uri, headers, expected", [
    (b"/?id=1%27%20or%20%271%27=%271", (), 942100),
    (b"/?q=%3Cscript%3Ealert(1)%3C/script%3E", (), 941100),
    (b"/?file=../../../../etc/passwd", (), 930100),
    (b"/?file=/etc/passwd", (), 930120),
    (b"/?cmd=%3Bcat%20/etc/passwd", (), 932160),
    (b"/", ((b"user-agent", b"nikto/2.1.6"),), 913100),
])
def test_known_attacks_hit_their_rules_and_are_blocked(crs3, uri, headers, expected):
    tx = _run(crs3, uri, headers)
    assert expected in [m.rule_id for m in tx.matches]
    assert tx.interruption is not None and tx.interruption.status == 403


def test_sqli_in_a_form_body_is_blocked(crs3):
    tx = _run(crs3, b"/login", ((b"content-type", b"application/x-www-form-urlencoded"),),
              b"POST", b"user=admin%27--&pass=x")
    assert tx.interruption is not None and tx.interruption.rule_id == 949110
